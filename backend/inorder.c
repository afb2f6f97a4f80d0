/* inorder: not written yet */
