DROP TABLE clients;
DROP TABLE users;
