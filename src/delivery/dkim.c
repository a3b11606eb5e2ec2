/* dkim: being written. */
