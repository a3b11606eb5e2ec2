/* dsn: being written. */
