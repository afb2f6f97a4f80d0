/* gmem: not written yet */
