// sqlite_schema.h — SqliteItemStore's schema and its migrations.
//
// InitializeSchema makes the schema in a new, empty database, or migrates an older retrace
// database to SqliteItemStore::kSchemaVersion, in one write transaction. FAILED_PRECONDITION
// for a database written by a newer retrace, for version 1 (refused, not migrated), and for an
// SQLite database that is not a retrace store; `path` names it in messages.
//
// Thread-safety: as the Connection passed in.
//
//   RETRACE_RETURN_IF_ERROR(InitializeSchema(*writer, db_path));
#ifndef RETRACE_CORE_STORE_INTERNAL_SQLITE_SCHEMA_H_
#define RETRACE_CORE_STORE_INTERNAL_SQLITE_SCHEMA_H_

#include <string>

#include "absl/status/status.h"
#include "core/store/internal/sqlite_connection.h"

namespace retrace::store::internal {

absl::Status InitializeSchema(Connection& conn, const std::string& path);

}  // namespace retrace::store::internal

#endif  // RETRACE_CORE_STORE_INTERNAL_SQLITE_SCHEMA_H_
