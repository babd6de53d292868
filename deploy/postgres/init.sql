-- One database per service that keeps data; the gateway has none.
-- The postgres image runs this once, as POSTGRES_USER, when its data volume is new,
-- so the databases belong to that user.
CREATE DATABASE auth;
CREATE DATABASE profiles;
CREATE DATABASE orders;
CREATE DATABASE billing;
CREATE DATABASE notifications;
