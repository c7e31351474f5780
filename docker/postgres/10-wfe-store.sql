-- The wfe state store gets a database of its own on the same server (run once, when the
-- PostgreSQL volume is created; /docker-entrypoint-initdb.d of the official postgres image).
CREATE DATABASE wfe OWNER airflow;
