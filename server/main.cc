// retrace-server: the gRPC service. Builds one object graph — config, loggers, tokens, TLS,
// worker pool, gRPC server, metrics endpoint, then models, store and engine — and runs it until
// SIGTERM or SIGINT, then drains in-flight calls.
//
// Readiness: the server listens first and reports NOT_SERVING (calls answer UNAVAILABLE) while
// the models load, warm up and the collections open; then health turns SERVING.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/common/this_thread.h"
#include "core/common/thread_pool.h"
#include "core/engine/engine.h"
#include "core/engine/validation.h"
#include "core/models/torch/torchscript_module.h"
#include "core/store/postgres_item_store.h"
#include "core/store/sqlite_item_store.h"
#include "server/cluster/remote_spaces.h"
#include "server/cluster/shard_map.h"
#include "server/cluster/shard_service.h"
#include "server/logging.h"
#include "server/http/http_api.h"
#include "server/metrics/metrics_http_server.h"
#include "server/metrics/metrics_registry.h"
#include "server/model_folder.h"
#include "server/retrace_service.h"
#include "server/server_config.h"
#include "server/service_metrics.h"
#include "server/token_auth.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, config, "", "server config file (retrace.v1.ServerConfig, text format)");
ABSL_FLAG(std::string, listen, "", "host:port to listen on (default 127.0.0.1:50051; port 0 picks one)");
ABSL_FLAG(std::string, http_listen, "",
          "host:port of the HTTP/JSON API and web page (default 127.0.0.1:8080; off: none)");
ABSL_FLAG(std::string, http_port_file, "", "write the HTTP port actually listened on to this file");
ABSL_FLAG(std::string, models, "", "folder with clip/ and captioner/ model folders (default build/models)");
ABSL_FLAG(std::string, data_dir, "", "the server's data folder (default retrace-data)");
ABSL_FLAG(std::string, store, "",
          "where items live: empty for the embedded SQLite store in --data-dir (one process), or "
          "a PostgreSQL URI that several servers share, e.g. postgresql://retrace@db:5432/retrace "
          "(the password from PGPASSWORD or ~/.pgpass)");
ABSL_FLAG(std::string, replica_id, "",
          "this server's id in the store's replica records, stable across restarts "
          "(default hostname:port)");
ABSL_FLAG(int, workers, 0,
          "threads running calls (default: max(32, 4 x cores) with batching, cores without)");
ABSL_FLAG(int, index_workers, 0,
          "threads running Index and Delete requests, apart from --workers (default: as many)");
ABSL_FLAG(bool, no_batching, false,
          "run each call's model and search work on its own worker, without dynamic batching");
ABSL_FLAG(std::string, port_file, "", "write the port actually listened on to this file");
ABSL_FLAG(std::string, role, "",
          "all (default: one process, every shard), frontend (models, writes, scatters searches "
          "over the shard map) or shard (holds its shard group's indexes for the frontends)");
ABSL_FLAG(std::string, shard_map, "", "the shard map file (retrace.v1.ShardMap, text format)");
ABSL_FLAG(std::string, advertise, "",
          "a shard server's address as the shard map writes it (default: --listen)");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");
ABSL_FLAG(std::string, log_format, "", "text (default) or json: one JSON object per line");
ABSL_FLAG(bool, access_log, false,
          "log every call (rpc, code, ms, request id, token holder) at info");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve TLS (with --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "", "PEM CA bundle: require client certificates it signed");
ABSL_FLAG(std::string, auth_tokens, "",
          "AuthTokens file: require bearer tokens (see config.proto)");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port for Prometheus /metrics and /readyz (default off)");

namespace retrace::server {
namespace {

// SIGTERM and SIGINT are caught by a handler that writes the signal number to a pipe, which one
// thread reads. (Blocking them and calling sigwait does not work: libraries such as OpenBLAS
// start threads before main, and those would take the default action and kill the process.)
int shutdown_pipe[2] = {-1, -1};

void OnShutdownSignal(int signal_number) {
  const char byte = static_cast<char>(signal_number);
  [[maybe_unused]] ssize_t written = write(shutdown_pipe[1], &byte, 1);
}

void InstallShutdownHandlers() {
  if (pipe(shutdown_pipe) != 0) return;
  struct sigaction action {};
  action.sa_handler = OnShutdownSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

// WaitForShutdownSignal blocks until SIGTERM or SIGINT arrives and returns it.
int WaitForShutdownSignal() {
  char byte = 0;
  while (read(shutdown_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
  return byte;
}

int Fail(spdlog::logger& log, const absl::Status& status, std::string_view what) {
  log.critical("{}: {}", what, status.ToString());
  return 1;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(field, ": cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", path, " is not a PEM file"));
  }
  return text.str();
}

// ServerCredentials: TLS (optionally requiring client certificates) when configured, else
// plaintext.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const v1::Security& security) {
  if (security.tls_cert().empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options;
  RETRACE_ASSIGN_OR_RETURN(std::string cert, ReadPem(security.tls_cert(), "--tls-cert"));
  RETRACE_ASSIGN_OR_RETURN(std::string key, ReadPem(security.tls_key(), "--tls-key"));
  options.pem_key_cert_pairs.push_back({std::move(key), std::move(cert)});
  if (!security.tls_client_ca().empty()) {
    RETRACE_ASSIGN_OR_RETURN(options.pem_root_certs,
                             ReadPem(security.tls_client_ca(), "--tls-client-ca"));
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// IsLoopback: whether `listen` (host:port) only accepts connections from this machine.
bool IsLoopback(const std::string& listen) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0 ||
         host.rfind("unix:", 0) == 0 || listen.rfind("unix:", 0) == 0;
}

// OpenStore opens the configured store: PostgreSQL for a URI, else SQLite in the data folder.
absl::StatusOr<std::unique_ptr<store::ItemStore>> OpenStore(const v1::ServerConfig& config) {
  if (config.store().empty()) {
    auto sqlite = store::SqliteItemStore::Open(config.data_dir());
    if (!sqlite.ok()) {
      return absl::Status(sqlite.status().code(),
                          absl::StrCat("opening ", config.data_dir(), ": ",
                                       sqlite.status().message()));
    }
    return std::unique_ptr<store::ItemStore>(std::move(*sqlite));
  }
  store::PostgresItemStore::Options options;
  options.conninfo = config.store();
  options.pool_size = config.replication().postgres_pool_size();
  options.poll_interval = absl::Milliseconds(config.replication().poll_interval_ms());
  RETRACE_ASSIGN_OR_RETURN(auto postgres, store::PostgresItemStore::Open(options));
  return std::unique_ptr<store::ItemStore>(std::move(postgres));
}

int Run(ServerLoggers& logs) {
  spdlog::logger* log = logs.events.get();
  v1::ServerConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    auto loaded = LoadServerConfig(path);
    if (!loaded.ok()) return Fail(*log, loaded.status(), "config");
    config = std::move(*loaded);
  }
  if (auto v = absl::GetFlag(FLAGS_listen); !v.empty()) config.set_listen(v);
  if (auto v = absl::GetFlag(FLAGS_http_listen); !v.empty()) config.set_http_listen(v);
  if (auto v = absl::GetFlag(FLAGS_models); !v.empty()) config.set_models_dir(v);
  if (auto v = absl::GetFlag(FLAGS_data_dir); !v.empty()) config.set_data_dir(v);
  if (auto v = absl::GetFlag(FLAGS_store); !v.empty()) config.set_store(v);
  if (auto v = absl::GetFlag(FLAGS_replica_id); !v.empty()) {
    config.mutable_replication()->set_replica_id(v);
  }
  if (auto v = absl::GetFlag(FLAGS_role); !v.empty()) config.mutable_cluster()->set_role(v);
  if (auto v = absl::GetFlag(FLAGS_shard_map); !v.empty()) {
    config.mutable_cluster()->set_shard_map(v);
  }
  if (auto v = absl::GetFlag(FLAGS_advertise); !v.empty()) {
    config.mutable_cluster()->set_advertise(v);
  }
  if (auto v = absl::GetFlag(FLAGS_workers); v != 0) config.mutable_threads()->set_workers(v);
  if (auto v = absl::GetFlag(FLAGS_index_workers); v != 0) {
    config.mutable_threads()->set_index_workers(v);
  }
  if (absl::GetFlag(FLAGS_no_batching)) config.mutable_batching()->set_disabled(true);
  v1::Security& security = *config.mutable_security();
  if (auto v = absl::GetFlag(FLAGS_tls_cert); !v.empty()) security.set_tls_cert(v);
  if (auto v = absl::GetFlag(FLAGS_tls_key); !v.empty()) security.set_tls_key(v);
  if (auto v = absl::GetFlag(FLAGS_tls_client_ca); !v.empty()) security.set_tls_client_ca(v);
  if (auto v = absl::GetFlag(FLAGS_auth_tokens); !v.empty()) security.set_auth_tokens(v);
  v1::Observability& observability = *config.mutable_observability();
  if (auto v = absl::GetFlag(FLAGS_metrics_listen); !v.empty()) observability.set_metrics_listen(v);
  if (auto v = absl::GetFlag(FLAGS_log_format); !v.empty()) observability.set_log_format(v);
  if (absl::GetFlag(FLAGS_access_log)) observability.set_access_log(true);
  ApplyDefaults(config);
  if (absl::Status s = ValidateServerConfig(config); !s.ok()) return Fail(*log, s, "config");
  if (observability.log_format() == "json") {
    logs = MakeServerLoggers(LogFormat::kJson, logs.events->level());
    log = logs.events.get();
  }

  // The sharded cluster's roles (ARCHITECTURE.md, "Cluster"): a shard server finds its group in
  // the map by its address; a frontend follows the map file and scatters searches over it.
  const std::string& role = config.cluster().role();
  const bool shard_role = role == engine::defaults::kRoleShard;
  const bool frontend_role = role == engine::defaults::kRoleFrontend;
  std::unique_ptr<ShardMapFile> shard_map;
  engine::ShardGroup shard_group;
  if (shard_role || frontend_role) {
    auto opened = ShardMapFile::Open(config.cluster().shard_map(), logs.events);
    if (!opened.ok()) return Fail(*log, opened.status(), "--shard-map");
    shard_map = std::move(*opened);
  }
  if (shard_role) {
    auto group = GroupOf(*shard_map->Current(), config.cluster().advertise());
    if (!group.ok()) return Fail(*log, group.status(), "--advertise");
    shard_group = {*group, shard_map->Current()->groups_size()};
  }

  std::unique_ptr<TokenAuthorizer> auth = TokenAuthorizer::Disabled();
  if (!security.auth_tokens().empty()) {
    auto loaded = TokenAuthorizer::Load(security.auth_tokens(),
                                        engine::FilterLimitsFor(ToEngineOptions(config).limits));
    if (!loaded.ok()) return Fail(*log, loaded.status(), "--auth-tokens");
    auth = std::move(*loaded);
  }
  auto credentials = ServerCredentials(security);
  if (!credentials.ok()) return Fail(*log, credentials.status(), "TLS");
  const bool tls = !security.tls_cert().empty();
  if (!tls && !IsLoopback(config.listen())) {
    log->warn(
        "listening on {} without TLS: anyone on the network can read the traffic{}; give "
        "--tls-cert and --tls-key",
        config.listen(), auth->enabled() ? ", bearer tokens included" : "");
  }

  InstallShutdownHandlers();
  const int torch_threads = config.threads().torch_intra_op();
  const int omp_threads = config.threads().faiss_omp();
  models::ConfigureTorchThreads(torch_threads);
  omp_set_num_threads(omp_threads);

  metrics::Registry registry;
  ServiceMetrics metrics(&registry);
  // Threads are named for top -H and perf; the bulk lane's run at threads.bulk_nice lower.
  const int bulk_nice = config.threads().bulk_nice();
  ThreadPool interactive_pool(config.threads().workers(), [omp_threads] {
    NameThisThread("retrace-worker");
    omp_set_num_threads(omp_threads);
  });
  ThreadPool bulk_pool(config.threads().index_workers(), [omp_threads, bulk_nice] {
    NameThisThread("retrace-index");
    LowerThisThreadPriority(bulk_nice);
    omp_set_num_threads(omp_threads);
  });
  const v1::Limits& limits = config.limits();
  ServiceOptions service_options;
  service_options.max_pending_calls = limits.max_pending_calls();
  service_options.default_deadline = std::chrono::milliseconds(limits.default_deadline_ms());
  service_options.max_index_streams = limits.max_index_streams();
  service_options.max_items_per_stream = limits.max_items_per_stream();
  service_options.access_log = observability.access_log();
  CallGate gate(&interactive_pool, &bulk_pool, auth.get(), &metrics, logs, service_options);
  RetraceService service(&gate);
  std::atomic<engine::Engine*> ready_engine{nullptr};
  metrics.WatchServer(&gate, &ready_engine);

  std::unique_ptr<metrics::MetricsHttpServer> metrics_http;
  if (!observability.metrics_listen().empty()) {
    metrics::MetricsHttpServer::Options http_options;
    http_options.ready = [&ready_engine] { return ready_engine.load() != nullptr; };
    auto started =
        metrics::MetricsHttpServer::Start(observability.metrics_listen(), &registry, http_options);
    if (!started.ok()) return Fail(*log, started.status(), "--metrics-listen");
    metrics_http = std::move(*started);
    log->info("Prometheus metrics at http://{}/metrics (port {}), readiness at /readyz",
              observability.metrics_listen(), metrics_http->port());
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen(), *credentials, &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(limits.max_message_bytes()));
  builder.SetMaxSendMessageSize(static_cast<int>(limits.max_message_bytes()));
  // A shard server answers the frontends only: the public API is theirs.
  ShardServiceImpl shard_service(&ready_engine, shard_group);
  if (shard_role) {
    builder.RegisterService(&shard_service);
  } else {
    builder.RegisterService(&service);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    log->critical("cannot listen on {} (address in use, or not an address of this machine?)",
                  config.listen());
    return 1;
  }
  // Not ready until the models and collections are: load balancers and probes wait.
  server->GetHealthCheckService()->SetServingStatus(false);
  std::unique_ptr<http::HttpApi> http_api;
  if (config.http_listen() != engine::defaults::kHttpOff && !shard_role) {
    http::HttpListener::Options http_options;
    http_options.what = "HTTP API";
    // An HTTP thread waits while a worker runs its call: as many as the workers of both lanes,
    // plus two for the page's files, health probes and requests refused at the door.
    http_options.threads =
        static_cast<size_t>(config.threads().workers() + config.threads().index_workers()) + 2;
    http_options.max_body_bytes = static_cast<size_t>(limits.max_message_bytes());
    http_options.tls_cert = security.tls_cert();
    http_options.tls_key = security.tls_key();
    http_options.tls_client_ca = security.tls_client_ca();
    auto started = http::HttpApi::Start(config.http_listen(), &gate, http_options);
    if (started.ok()) {
      http_api = std::move(*started);
      const std::string host = config.http_listen().substr(0, config.http_listen().rfind(':'));
      log->info("HTTP/JSON API and web page at {}://{}:{}/ (OpenAPI at /v1/openapi.json)",
                tls ? "https" : "http", host, http_api->port());
      if (const std::string path = absl::GetFlag(FLAGS_http_port_file); !path.empty()) {
        std::ofstream(path) << http_api->port() << "\n";
      }
    } else if (config.http_listen() == engine::defaults::kHttpListen &&
               started.status().code() == absl::StatusCode::kUnavailable) {
      log->warn("no HTTP/JSON API: {} (give --http-listen HOST:PORT, or off)",
                started.status().ToString());
    } else {
      server->Shutdown();
      return Fail(*log, started.status(), "--http-listen");
    }
  }
  // The gRPC port file last: once it exists, both ports are.
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    std::ofstream(path) << port << "\n";
  }
  log->info("retrace-server listening on {} (port {}, {}{}), loading models", config.listen(), port,
            tls ? (security.tls_client_ca().empty() ? "TLS" : "TLS with client certificates")
                : "plaintext",
            auth->enabled() ? absl::StrCat(", ", auth->size(), " bearer tokens") : "");

  const int grace = config.shutdown_grace_seconds();
  std::atomic<bool> stopping{false};
  std::thread signal_waiter([&] {
    const int signal_number = WaitForShutdownSignal();
    stopping = true;
    log->info("{} received: draining in-flight calls (up to {} s)", strsignal(signal_number),
              grace);
    server->GetHealthCheckService()->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(grace));
  });
  // Fail stops a server whose start failed after it began listening.
  auto fail_started = [&](const absl::Status& status, std::string_view what) {
    Fail(*log, status, what);
    if (!stopping.exchange(true)) kill(getpid(), SIGTERM);
    signal_waiter.join();
    return 1;
  };

  const auto t0 = std::chrono::steady_clock::now();
  auto models = LoadModelSet(config.models_dir(), config.model_runtimes());
  if (!models.ok()) {
    return fail_started(models.status(),
                        absl::StrCat("loading models from ", config.models_dir(),
                                     " (make models writes the demo models to build/models)"));
  }
  engine::EngineOptions engine_options = ToEngineOptions(config);
  if (absl::Status s = WarmUpModels(*models, engine_options.caption); !s.ok()) {
    return fail_started(s, "warming up the models");
  }
  log->info(
      "models loaded and warmed up from {} in {:.1f} s: clip '{}' (dim {}), captioner '{}', {}",
      config.models_dir(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
      models->clip->manifest().Identity(), models->clip->dim(),
      models->captioner->manifest().Identity(),
      models->image_encoder
          ? absl::StrCat("image encoder '", models->image_encoder->manifest().Identity(), "' (dim ",
                         models->image_encoder->dim(), ")")
          : std::string("no image encoder (new collections' image space is CLIP's alone)"));

  auto store = OpenStore(config);
  if (!store.ok()) return fail_started(store.status(), "--store");
  const std::string store_name = (*store)->Describe();
  log->info("store: {}", store_name);
  if (engine_options.replication.replica_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    engine_options.replication.replica_id = absl::StrCat(host, ":", port);
  }
  // A shard server records the address the shard map names it by, so that cluster status joins
  // its positions to its place in the map.
  engine_options.replication.address =
      shard_role ? config.cluster().advertise()
                 : absl::StrCat(config.listen().substr(0, config.listen().rfind(':')), ":", port);
  engine_options.stage_observer = &metrics;
  // Each batcher thread runs one model (or the search) with the configured intra-op threads.
  // The captioner's batches are bulk work (Index captions every image), its threads lower.
  struct BatcherThreads {
    batching::BatcherOptions* options;
    const char* name;
    int nice;
  };
  for (const BatcherThreads& b :
       {BatcherThreads{&engine_options.batching.clip_image, "batch-clip-img", 0},
        BatcherThreads{&engine_options.batching.clip_text, "batch-clip-text", 0},
        BatcherThreads{&engine_options.batching.image_encoder, "batch-img-enc", 0},
        BatcherThreads{&engine_options.batching.captioner, "batch-captioner", bulk_nice}}) {
    b.options->on_start = [torch_threads, name = b.name, nice = b.nice] {
      NameThisThread(name);
      LowerThisThreadPriority(nice);
      models::ConfigureTorchThreads(torch_threads);
    };
  }
  engine_options.batching.search.on_start = [omp_threads] {
    NameThisThread("batch-search");
    omp_set_num_threads(omp_threads);
  };
  engine_options.shard_group = shard_group;
  if (frontend_role) {
    shard_map->Watch(absl::Milliseconds(config.cluster().shard_map_poll_ms()));
    engine_options.remote_spaces = std::make_shared<RemoteSpaces>(
        shard_map.get(), [&metrics](int group, const std::string& replica, grpc::StatusCode code,
                                    double seconds) {
          metrics.RecordShardCall(group, replica, code, seconds);
        });
  }
  auto engine =
      engine::Engine::Open(engine_options, std::move(*models), std::move(*store), logs.events);
  if (!engine.ok()) return fail_started(engine.status(), "opening collections");

  gate.SetEngine(engine->get());
  ready_engine = engine->get();
  // SERVING once every collection has caught up with the store (within
  // replication.ready_max_lag): a replica that starts behind others does not take traffic it
  // would answer from stale indexes.
  const auto caught_up_deadline = std::chrono::steady_clock::now() + std::chrono::hours(24);
  while (!stopping && !(*engine)->Ready() && std::chrono::steady_clock::now() < caught_up_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!stopping) server->GetHealthCheckService()->SetServingStatus(true);
  if (shard_role) {
    log->info("shard server of group {} of {} (shards s with s mod {} = {} of each collection)",
              shard_group.index, shard_group.count, shard_group.count, shard_group.index);
  } else if (frontend_role) {
    log->info("frontend over {} shard groups ({})", shard_map->Current()->groups_size(),
              config.cluster().shard_map());
  }
  log->info("ready: serving on {} as replica '{}' of {}; {} workers and {} index workers (nice "
            "+{}), {} intra-op threads, {} OpenMP threads; {}",
            config.listen(), engine_options.replication.replica_id, store_name,
            config.threads().workers(), config.threads().index_workers(), bulk_nice, torch_threads,
            omp_threads,
            config.batching().disabled() ? "batching off"
                                         : "dynamic batching (Search before Index)");

  server->Wait();
  signal_waiter.join();
  if (http_api) http_api->Stop();  // its calls use the engine
  if (metrics_http) metrics_http->Stop();  // its gauges read the engine
  ready_engine = nullptr;
  // Calls are drained: a last snapshot makes the next start fast.
  if (absl::Status s = (*engine)->SnapshotAll(); !s.ok()) {
    log->error("snapshot at shutdown: {} (the next start rebuilds from the store)", s.ToString());
  }
  log->info("stopped");
  return 0;
}

}  // namespace
}  // namespace retrace::server

// NormalizeFlagNames lets `--data-dir` mean `--data_dir`: absl flags use underscores, while
// the documented spellings use dashes.
void NormalizeFlagNames(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--", 2) != 0) continue;
    if (argv[i][2] == '\0') break;  // "--" ends the flags
    for (char* c = argv[i] + 2; *c != '\0' && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
}

int main(int argc, char** argv) {
  NormalizeFlagNames(argc, argv);
  absl::SetProgramUsageMessage(
      "retrace-server: cross-domain image retrieval over gRPC.\n"
      "  retrace-server [--models DIR] [--data-dir DIR] [--listen HOST:PORT] [--config FILE]");
  absl::ParseCommandLine(argc, argv);
  // abseil checks every Mutex acquisition against a global lock graph in its default build
  // (about 2% of a profiled search's CPU); the TSan build (make test-tsan) checks lock order.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  retrace::server::ServerLoggers logs = retrace::server::MakeServerLoggers(
      retrace::server::LogFormat::kText, spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  return retrace::server::Run(logs);
}
