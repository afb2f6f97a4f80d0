/* ring: not written yet */
