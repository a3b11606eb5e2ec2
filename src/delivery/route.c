/* route: being written. */
