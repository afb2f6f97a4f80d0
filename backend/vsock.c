/* vsock: not written yet */
