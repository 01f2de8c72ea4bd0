// invariants_test.js RENDERED DOCKERFILE — shows that the invariants (invariants.js) and the
// schema check (schema.js) catch what they promise: the shipped renders pass, and each
// mutation below, which removes one property a later edit might drop, is reported with its
// rule. A CTest case (label deploy) after render.sh; NODE_PATH as for validate.js.
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const { checkRender, readDockerDefaults } = require("./invariants");
const { validateObject } = require("./schema");

const [rendered, dockerfile] = process.argv.slice(2);
const defaults = readDockerDefaults(dockerfile);
const load = (name) => YAML.parseAllDocuments(fs.readFileSync(path.join(rendered, name + ".yaml"), "utf8"))
  .map((d) => d.toJS()).filter((o) => o !== null);
const renders = {};
for (const name of ["single", "replicas", "overlays/replicas-demo", "overlays/sharded-demo",
                    "overlays/single-tls", "overlays/replicas-gpu"]) {
  renders[name] = load(name);
}
const isDemo = (name) => name.endsWith("-demo");

// Helpers that find the object a mutation edits.
const find = (objects, kind, name) => {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind} ${name || ""}`);
  return o;
};
const server = (objects, kind = "Deployment", name) => find(objects, kind, name).spec.template.spec.containers[0];
const remove = (objects, kind, name) => objects.splice(objects.indexOf(find(objects, kind, name)), 1);

// [render, what is dropped or broken, the mutation, a phrase the report must contain]
const MUTATIONS = [
  ["replicas", "the readiness probe", (o) => delete server(o).readinessProbe, "readinessProbe missing"],
  ["replicas", "the startup probe", (o) => delete server(o).startupProbe, "startupProbe missing"],
  ["replicas", "liveness as a TCP probe", (o) => { server(o).livenessProbe = { tcpSocket: { port: 50051 } }; },
   "livenessProbe must be a grpc probe"],
  ["replicas", "a probe on another port", (o) => { server(o).readinessProbe.grpc.port = 50052; },
   "readinessProbe: grpc port 50052"],
  ["replicas", "runAsNonRoot", (o) => {
    delete find(o, "Deployment").spec.template.spec.securityContext.runAsNonRoot;
    delete server(o).securityContext.runAsNonRoot;
  }, "runAsNonRoot must be true"],
  ["replicas", "runAsNonRoot false in the container", (o) => { server(o).securityContext.runAsNonRoot = false; },
   "runAsNonRoot must be true"],
  ["replicas", "readOnlyRootFilesystem", (o) => { server(o).securityContext.readOnlyRootFilesystem = false; },
   "readOnlyRootFilesystem must be true"],
  ["replicas", "allowPrivilegeEscalation", (o) => delete server(o).securityContext.allowPrivilegeEscalation,
   "allowPrivilegeEscalation must be false"],
  ["replicas", "dropping capabilities", (o) => delete server(o).securityContext.capabilities,
   "capabilities must drop ALL"],
  ["replicas", "seccomp", (o) => delete find(o, "Deployment").spec.template.spec.securityContext.seccompProfile,
   "seccompProfile must be RuntimeDefault"],
  ["replicas", "the memory limit", (o) => delete server(o).resources.limits.memory,
   "resources.limits.memory missing"],
  ["replicas", "all limits", (o) => delete server(o).resources.limits, "resources.limits.cpu missing"],
  ["replicas", "the /tmp volume", (o) => {
    const c = server(o);
    c.volumeMounts = c.volumeMounts.filter((m) => m.mountPath !== "/tmp");
  }, "/tmp from an emptyDir"],
  ["replicas", "the PodDisruptionBudget", (o) => remove(o, "PodDisruptionBudget"),
   "no PodDisruptionBudget selects its pods"],
  ["replicas", "the HorizontalPodAutoscaler", (o) => remove(o, "HorizontalPodAutoscaler"),
   "no HorizontalPodAutoscaler scales it"],
  ["single", "an HPA on a StatefulSet", (o) => o.push({ apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler",
    metadata: { name: "x" }, spec: { scaleTargetRef: { apiVersion: "apps/v1", kind: "StatefulSet", name: "retrace" },
                                     maxReplicas: 2 } }), "scaled by hand, not by an HPA"],
  ["replicas", "the network policies", (o) => { while (o.some((x) => x.kind === "NetworkPolicy")) remove(o, "NetworkPolicy"); },
   "no NetworkPolicy selects its pods"],
  ["replicas", "the Prometheus annotations", (o) => delete find(o, "Deployment").spec.template.metadata.annotations,
   "prometheus.io/scrape"],
  ["replicas", "the metrics port of the Service", (o) => {
    const s = find(o, "Service", "retrace");
    s.spec.ports = s.spec.ports.filter((p) => p.name !== "metrics");
  }, "no Service with a metrics port"],
  ["replicas", "a headless Service", (o) => delete find(o, "Service", "retrace").spec.clusterIP,
   "must be headless"],
  ["replicas", "the database password inlined", (o) => {
    const e = server(o).env.find((x) => x.name === "PGPASSWORD");
    delete e.valueFrom;
    e.value = "hunter2";
  }, "env PGPASSWORD must come from a Secret"],
  ["replicas", "a password in the store URI", (o) => {
    server(o).args = server(o).args.map((a) => a.startsWith("--store") ? "--store=postgresql://u:pw@db/r" : a);
  }, "carries a secret"],
  ["replicas", "the tokens file from a ConfigMap", (o) => {
    find(o, "Deployment").spec.template.spec.volumes.find((v) => v.name === "tokens").secret = undefined;
    find(o, "Deployment").spec.template.spec.volumes.find((v) => v.name === "tokens").configMap = { name: "t" };
  }, "--auth-tokens=/etc/retrace/tokens/tokens.txtpb must be a file of a mounted Secret"],
  ["replicas", "authentication", (o) => {
    server(o).args = server(o).args.filter((a) => !a.startsWith("--auth-tokens"));
  }, "--auth-tokens missing"],
  ["replicas", "a Secret's content in the manifests", (o) => o.push({ apiVersion: "v1", kind: "Secret",
    metadata: { name: "retrace-tokens" }, stringData: { "tokens.txtpb": "x" } }), "a Secret with its content"],
  ["replicas", "a second source of the listen port", (o) => server(o).args.push("--listen=0.0.0.0:50052"),
   "--listen is the image's"],
  ["replicas", "the image's gRPC port", (o) => { server(o).ports.find((p) => p.name === "grpc").containerPort = 50052; },
   "port grpc must be 50051"],
  ["replicas", "the data folder", (o) => {
    server(o).volumeMounts = server(o).volumeMounts.filter((m) => m.name !== "data");
  }, "nothing mounted at the data folder"],
  ["replicas", "the store", (o) => {
    server(o).args = server(o).args.filter((a) => !a.startsWith("--store"));
  }, "a Deployment's servers need --store"],
  ["replicas", "the replica id", (o) => {
    server(o).args = server(o).args.filter((a) => !a.startsWith("--replica-id"));
  }, "a replica (--store) needs --replica-id"],
  ["replicas", "an unknown Secret", (o) => {
    server(o).env.find((x) => x.name === "PGPASSWORD").valueFrom.secretKeyRef.name = "retrace-db";
  }, "Secret retrace-db is neither in the render nor one the operator creates"],
  ["single", "the persistent data volume", (o) => {
    const sts = find(o, "StatefulSet");
    delete sts.spec.volumeClaimTemplates;
    sts.spec.template.spec.volumes.push({ name: "data", emptyDir: {} });
  }, "must be a persistent volume"],
  ["overlays/sharded-demo", "a shard map that misses a pod", (o) => {
    find(o, "StatefulSet", "retrace-shard").spec.replicas = 6;
  }, "the shard map does not match"],
  ["overlays/sharded-demo", "a shard map with a hashed name", (o) => {
    find(o, "ConfigMap", "retrace-shard-map").metadata.name = "retrace-shard-map-5f6h";
  }, "ConfigMap retrace-shard-map is neither in the render"],
  ["overlays/sharded-demo", "the shard's own address", (o) => {
    const c = server(o, "StatefulSet", "retrace-shard");
    c.args = c.args.map((a) => a.startsWith("--advertise") ? "--advertise=$(POD_NAME):50051" : a);
  }, "--advertise must be $(POD_NAME).retrace-shard.$(NAMESPACE).svc:50051"],
  ["overlays/sharded-demo", "the PodDisruptionBudget of the shards", (o) => remove(o, "PodDisruptionBudget", "retrace-shard"),
   "StatefulSet/retrace-shard: no PodDisruptionBudget"],
  ["overlays/sharded-demo", "the database's probes", (o) => delete server(o, "StatefulSet", "retrace-postgres").livenessProbe,
   "container postgres: livenessProbe missing"],
  ["overlays/sharded-demo", "the database's read-only root", (o) => {
    server(o, "StatefulSet", "retrace-postgres").securityContext.readOnlyRootFilesystem = false;
  }, "container postgres: readOnlyRootFilesystem must be true"],
  ["overlays/single-tls", "a gRPC probe with TLS on", (o) => {
    server(o, "StatefulSet").readinessProbe = { grpc: { port: 50051 } };
  }, "cannot speak TLS"],
  ["overlays/single-tls", "a TLS probe without the CA", (o) => {
    server(o, "StatefulSet").readinessProbe.exec.command = ["retrace", "health"];
  }, "the probe must be 'retrace --tls-ca=... health'"],
  ["single", "an exec probe without TLS", (o) => {
    server(o, "StatefulSet").livenessProbe = { exec: { command: ["retrace", "health"] } };
  }, "livenessProbe must be a grpc probe"],
  ["overlays/replicas-gpu", "a GPU request unlike its limit", (o) => {
    server(o).resources.requests["nvidia.com/gpu"] = 2;
  }, "request must equal its limit"],
];

// Schema mutations: what the API server would refuse.
const SCHEMA_MUTATIONS = [
  ["a misspelled field", (o) => { server(o).readinesProbe = server(o).readinessProbe; }, "readinesProbe: unknown field"],
  ["a port as a string", (o) => { server(o).ports[0].containerPort = "50051"; }, "must be integer"],
  ["a missing container name", (o) => delete server(o).name, "must have required property name"],
  ["a bad quantity", (o) => { server(o).resources.limits.cpu = "four"; }, "quantity"],
];

let failures = 0;
const check = (ok, message) => {
  if (!ok) {
    failures++;
    console.error("FAILED: " + message);
  }
};

for (const [name, objects] of Object.entries(renders)) {
  const errors = checkRender(objects, { name, defaults, demo: isDemo(name) });
  check(errors.length === 0, `${name} as shipped: ${errors.join("; ")}`);
}
for (const [name, what, mutate, phrase] of MUTATIONS) {
  const objects = structuredClone(renders[name]);
  mutate(objects);
  const errors = checkRender(objects, { name, defaults, demo: isDemo(name) });
  check(errors.some((e) => e.includes(phrase)),
        `${name} without ${what}: expected a report containing "${phrase}", got: ${JSON.stringify(errors)}`);
}
for (const [what, mutate, phrase] of SCHEMA_MUTATIONS) {
  const objects = structuredClone(renders.replicas);
  mutate(objects);
  const errors = validateObject(find(objects, "Deployment"));
  check(errors.some((e) => e.includes(phrase)),
        `schema with ${what}: expected "${phrase}", got: ${JSON.stringify(errors)}`);
}
const total = MUTATIONS.length + SCHEMA_MUTATIONS.length;
console.log(`invariants_test: ${Object.keys(renders).length} renders pass as shipped; ` +
            `${total - failures} of ${total} mutations reported`);
process.exitCode = failures ? 1 : 0;
