// retrace-server: the gRPC service. Builds one object graph — config, models, store, engine,
// worker pool, gRPC server — and runs it until SIGTERM or SIGINT, then drains in-flight calls.
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
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/common/thread_pool.h"
#include "core/engine/engine.h"
#include "core/models/torch/torchscript_module.h"
#include "core/store/sqlite_item_store.h"
#include "server/model_folder.h"
#include "server/retrace_service.h"
#include "server/server_config.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, config, "", "server config file (retrace.v1.ServerConfig, text format)");
ABSL_FLAG(std::string, listen, "", "host:port to listen on (default 127.0.0.1:50051; port 0 picks one)");
ABSL_FLAG(std::string, models, "", "folder with clip/ and captioner/ model folders (default build/models)");
ABSL_FLAG(std::string, data_dir, "", "the server's data folder (default retrace-data)");
ABSL_FLAG(int, workers, 0, "worker threads for decode, inference and search (default: cores)");
ABSL_FLAG(std::string, port_file, "", "write the port actually listened on to this file");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");

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

int Run(spdlog::logger& log, std::shared_ptr<spdlog::logger> shared_log) {
  v1::ServerConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    auto loaded = LoadServerConfig(path);
    if (!loaded.ok()) return Fail(log, loaded.status(), "config");
    config = std::move(*loaded);
  }
  if (auto v = absl::GetFlag(FLAGS_listen); !v.empty()) config.set_listen(v);
  if (auto v = absl::GetFlag(FLAGS_models); !v.empty()) config.set_models_dir(v);
  if (auto v = absl::GetFlag(FLAGS_data_dir); !v.empty()) config.set_data_dir(v);
  if (auto v = absl::GetFlag(FLAGS_workers); v != 0) config.mutable_threads()->set_workers(v);
  ApplyDefaults(config);
  if (absl::Status s = ValidateServerConfig(config); !s.ok()) return Fail(log, s, "config");

  InstallShutdownHandlers();
  const int torch_threads = config.threads().torch_intra_op();
  const int omp_threads = config.threads().faiss_omp();
  models::ConfigureTorchThreads(torch_threads);
  omp_set_num_threads(omp_threads);

  const auto t0 = std::chrono::steady_clock::now();
  auto models = LoadModelSet(config.models_dir());
  if (!models.ok()) {
    return Fail(log, models.status(),
                absl::StrCat("loading models from ", config.models_dir(),
                             " (make models writes the demo models to build/models)"));
  }
  log.info("models loaded from {} in {:.1f} s: clip '{}' (dim {}), captioner '{}', {}",
           config.models_dir(),
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
           models->clip->manifest().Identity(), models->clip->dim(),
           models->captioner->manifest().Identity(),
           models->image_encoder
               ? absl::StrCat("image encoder '", models->image_encoder->manifest().Identity(),
                              "' (dim ", models->image_encoder->dim(), ")")
               : std::string("no image encoder (new collections' image space is CLIP's alone)"));

  auto store = store::SqliteItemStore::Open(config.data_dir());
  if (!store.ok()) return Fail(log, store.status(), absl::StrCat("opening ", config.data_dir()));
  auto engine = engine::Engine::Open(ToEngineOptions(config), std::move(*models),
                                     std::move(*store), shared_log);
  if (!engine.ok()) return Fail(log, engine.status(), "opening collections");

  ThreadPool pool(config.threads().workers(), [omp_threads] { omp_set_num_threads(omp_threads); });
  RetraceService service(engine->get(), &pool, shared_log);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen(), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.limits().max_message_bytes()));
  builder.SetMaxSendMessageSize(static_cast<int>(config.limits().max_message_bytes()));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    log.critical("cannot listen on {} (address in use, or not an address of this machine?)",
                 config.listen());
    return 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    std::ofstream(path) << port << "\n";
  }
  log.info("retrace-server listening on {} (port {}), data in {}, {} workers", config.listen(),
           port, config.data_dir(), config.threads().workers());

  const int grace = config.shutdown_grace_seconds();
  std::thread signal_waiter([&] {
    const int signal_number = WaitForShutdownSignal();
    log.info("{} received: draining in-flight calls (up to {} s)", strsignal(signal_number), grace);
    server->GetHealthCheckService()->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(grace));
  });
  server->Wait();
  signal_waiter.join();
  // Calls are drained: a last snapshot makes the next start fast.
  if (absl::Status s = (*engine)->SnapshotAll(); !s.ok()) {
    log.error("snapshot at shutdown: {} (the next start rebuilds from the store)", s.ToString());
  }
  log.info("stopped");
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
  auto log = spdlog::stderr_color_mt("retrace");
  log->set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  return retrace::server::Run(*log, log);
}
