/* vu: not written yet */
