-- postd directory schema (userdb = pgsql). Addresses are lower-case user@domain.
CREATE TABLE domains (
    domain text PRIMARY KEY
);
CREATE TABLE users (
    username    text PRIMARY KEY,          -- user@domain, lower case
    password    text NOT NULL,             -- a hash as in the users file ({SCHEME} or crypt(3) $id$)
    enabled     boolean NOT NULL DEFAULT true,
    retention   text,                      -- per-user retention (as the users file field), NULL = default
    login_delay integer,                   -- seconds, NULL = default
    extra       text                       -- other key=value fields, space separated, as in the users file
);
CREATE TABLE aliases (
    address text PRIMARY KEY,              -- 'info@example.org' or '@example.net'
    targets text NOT NULL                  -- comma separated, as in virtual(5)
);
