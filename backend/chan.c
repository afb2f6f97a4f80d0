/* chan: not written yet */
