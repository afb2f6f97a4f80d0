/* vq: not written yet */
