/* dns: being written. */
