// Package db holds Errand's schema (migrations/, embedded) and the
// sqlc-generated queries over it. Files named *.sql.go, db.go and models.go
// are generated from ../queries and ./migrations: never edit them by hand;
// run `make generate`.
package db
