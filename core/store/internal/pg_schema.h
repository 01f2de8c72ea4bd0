// pg_schema.h — PostgresItemStore's schema and its migrations.
//
// MigrateSchema brings a database to PostgresItemStore::kSchemaVersion, one migration at a time,
// under an advisory lock, so servers starting together migrate it once. FAILED_PRECONDITION when
// the database's schema is newer than this build's, or holds tables of these names that retrace
// did not make.
//
// Thread-safety: as the Connection passed in.
//
//   RETRACE_RETURN_IF_ERROR(MigrateSchema(*conn));
#ifndef RETRACE_CORE_STORE_INTERNAL_PG_SCHEMA_H_
#define RETRACE_CORE_STORE_INTERNAL_PG_SCHEMA_H_

#include "absl/status/status.h"
#include "core/store/internal/pg_connection.h"

namespace retrace::store::internal::pg {

absl::Status MigrateSchema(Connection& conn);

}  // namespace retrace::store::internal::pg

#endif  // RETRACE_CORE_STORE_INTERNAL_PG_SCHEMA_H_
