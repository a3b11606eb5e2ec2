/* smtp_client: being written. */
