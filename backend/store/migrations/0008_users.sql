-- Local accounts (when no OIDC provider is configured). Passwords are scrypt hashes.
CREATE TABLE users (
    username VARCHAR PRIMARY KEY,
    display_name VARCHAR,
    role VARCHAR NOT NULL,
    password_hash VARCHAR NOT NULL,
    created TIMESTAMP DEFAULT current_timestamp,
    disabled BOOLEAN DEFAULT false
);
