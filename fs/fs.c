/* fs: not written yet */
