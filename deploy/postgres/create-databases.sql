-- One database per service, as on a laptop each service has its own SQLite file.
CREATE DATABASE inventory;
CREATE DATABASE payment;
CREATE DATABASE shipping;
CREATE DATABASE orders;
