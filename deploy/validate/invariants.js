// invariants.js: what every rendered topology must keep, so that an edit cannot drop it silently
// (deploy/README.md "What the tests hold the manifests to"). Each check names the object and the
// rule it breaks; invariants_test.js shows that each rule fails when its property is removed.
//
//   const { checkRender } = require("./invariants");
//   const errors = checkRender(objects, { name: "replicas", defaults, demo: false });
//
// `defaults` are the image's (docker/Dockerfile's ARGs, readDockerDefaults): the manifests repeat
// its ports and data folder where Kubernetes needs numbers, and must agree with it.
"use strict";

const fs = require("fs");

// Secrets the operator creates (deploy/README.md); every other referenced Secret or ConfigMap
// must be in the render.
const OPERATOR_SECRETS = new Set(["retrace-tokens", "retrace-store", "retrace-postgres-tls",
                                  "retrace-tls"]);
const SECRET_NAME = /PASS|TOKEN|SECRET|KEY|CREDENTIAL|^RETRACE_STORE$/i;
// Flags whose value is a file of secret material: it must come from a mounted Secret.
const SECRET_FILE_FLAGS = ["--auth-tokens", "--tls-cert", "--tls-key", "--tls-client-ca"];
// Flags the image's own config sets (docker/server.txtpb): a second value here would be a
// second source of the ports and paths.
const IMAGE_FLAGS = ["--listen", "--metrics-listen", "--data-dir", "--config"];

// readDockerDefaults: GRPC_PORT, METRICS_PORT and DATA_DIR from the Dockerfile's ARG lines.
function readDockerDefaults(dockerfile) {
  const text = fs.readFileSync(dockerfile, "utf8");
  const value = (name) => {
    const m = text.match(new RegExp(`^ARG ${name}=(\\S+)`, "m"));
    if (!m) throw new Error(`${dockerfile}: no 'ARG ${name}=...'`);
    return m[1];
  };
  return { grpcPort: Number(value("GRPC_PORT")), metricsPort: Number(value("METRICS_PORT")),
           dataDir: value("DATA_DIR") };
}

const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

function id(o) {
  return `${o.kind}/${o.metadata.name}`;
}

// matches: whether a label selector (matchLabels, matchExpressions In/NotIn/Exists) selects
// `labels`.
function matches(selector, labels) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels || {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === "In" && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

function isRetrace(container) {
  const image = (container.image || "").split("/").pop().split(/[:@]/)[0];
  return image === "retrace" || image === "retrace-cuda";
}

function flag(args, name) {  // the value of --name=value (or --name value), else undefined
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith(name + "=")) return args[i].slice(name.length + 1);
    if (args[i] === name) return args[i + 1];
  }
  return undefined;
}

function portOf(container, name) {
  const p = (container.ports || []).find((q) => q.name === name);
  return p ? p.containerPort : undefined;
}

// The shard map's groups: [[address, ...], ...] from its text-proto form.
function parseShardMap(text) {
  const groups = [];
  const re = /groups\s*\{([^}]*)\}/g;
  let m;
  while ((m = re.exec(text.replace(/#[^\n]*/g, ""))) !== null) {
    groups.push([...m[1].matchAll(/replicas:\s*"([^"]*)"/g)].map((r) => r[1]));
  }
  return groups;
}

// checkRender: the rules `objects` (one rendered kustomization) break; [] when none.
function checkRender(objects, { name, defaults, demo }) {
  const errors = [];
  const fail = (o, message) => errors.push(`${name}: ${o ? id(o) + ": " : ""}${message}`);
  const of = (kind) => objects.filter((o) => o.kind === kind);
  const workloads = objects.filter((o) => WORKLOADS.has(o.kind));
  const named = (kind, n) => objects.find((o) => o.kind === kind && o.metadata.name === n);

  if (!demo) {
    for (const s of of("Secret")) {
      fail(s, "a Secret with its content in the manifests; only demo overlays may carry one (the " +
              "operator creates the others: deploy/README.md)");
    }
  }

  for (const w of workloads) {
    const pod = w.spec.template;
    const spec = pod.spec;
    const labels = pod.metadata.labels || {};
    const psc = spec.securityContext || {};
    if (spec.automountServiceAccountToken !== false) {
      fail(w, "automountServiceAccountToken must be false (no pod calls the Kubernetes API)");
    }
    const containers = (spec.initContainers || []).concat(spec.containers);
    const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
    for (const t of w.spec.volumeClaimTemplates || []) volumes.set(t.metadata.name, { pvc: t });

    for (const c of containers) {
      const where = `container ${c.name}`;
      const sc = c.securityContext || {};
      if (!(sc.runAsNonRoot === true || (sc.runAsNonRoot === undefined && psc.runAsNonRoot === true))) {
        fail(w, `${where}: runAsNonRoot must be true`);
      }
      const seccomp = (sc.seccompProfile || psc.seccompProfile || {}).type;
      if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") {
        fail(w, `${where}: seccompProfile must be RuntimeDefault`);
      }
      if (sc.allowPrivilegeEscalation !== false) fail(w, `${where}: allowPrivilegeEscalation must be false`);
      if (sc.privileged === true) fail(w, `${where}: privileged`);
      if (sc.readOnlyRootFilesystem !== true) fail(w, `${where}: readOnlyRootFilesystem must be true`);
      const caps = sc.capabilities || {};
      if (!(caps.drop || []).includes("ALL")) fail(w, `${where}: capabilities must drop ALL`);
      if ((caps.add || []).length) fail(w, `${where}: capabilities must add none`);
      const r = c.resources || {};
      for (const kind of ["requests", "limits"]) {
        for (const res of ["cpu", "memory"]) {
          if (!(r[kind] && r[kind][res] !== undefined)) fail(w, `${where}: resources.${kind}.${res} missing`);
        }
      }
      for (const [res, limit] of Object.entries(r.limits || {})) {
        if (res.includes("/") && String((r.requests || {})[res]) !== String(limit)) {
          fail(w, `${where}: ${res}: an extended resource's request must equal its limit`);
        }
      }
      const mounts = c.volumeMounts || [];
      const tmp = mounts.find((m) => m.mountPath === "/tmp");
      if (!tmp || !(volumes.get(tmp.name) || {}).emptyDir) {
        fail(w, `${where}: a read-only root needs /tmp from an emptyDir volume`);
      }

      // Secrets: in environment variables only by reference, in arguments only as files.
      for (const e of c.env || []) {
        if (SECRET_NAME.test(e.name) && !(e.valueFrom && e.valueFrom.secretKeyRef)) {
          fail(w, `${where}: env ${e.name} must come from a Secret (secretKeyRef), not be inlined`);
        }
      }
      const args = (c.command || []).concat(c.args || []);
      for (const a of args) {
        if (/^--token\b|password=|:\/\/[^/@\s]*:[^/@\s]*@/i.test(a)) {
          fail(w, `${where}: argument '${a}' carries a secret; mount it from a Secret`);
        }
      }
      const secretFile = (file) => mounts.some((m) => {
        const v = volumes.get(m.name) || {};
        const under = m.subPath ? file === m.mountPath : file.startsWith(m.mountPath.replace(/\/?$/, "/"));
        return under && v.secret;
      });
      for (const f of SECRET_FILE_FLAGS) {
        const file = flag(args, f);
        if (file !== undefined && !secretFile(file)) {
          fail(w, `${where}: ${f}=${file} must be a file of a mounted Secret volume`);
        }
      }

      // Probes: all three, and for the server the gRPC health service on its gRPC port.
      const tls = flag(args, "--tls-cert") !== undefined;
      for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const probe = c[p];
        if (!probe) {
          fail(w, `${where}: ${p} missing`);
          continue;
        }
        if (!isRetrace(c)) continue;
        if (probe.grpc) {
          if (probe.grpc.port !== defaults.grpcPort) {
            fail(w, `${where}: ${p}: grpc port ${probe.grpc.port}, the server's is ${defaults.grpcPort}`);
          }
          if (tls) fail(w, `${where}: ${p}: the kubelet's grpc probe cannot speak TLS, and --tls-cert is set`);
        } else if (tls && probe.exec) {
          const cmd = probe.exec.command || [];
          if (!(cmd[0] === "retrace" && cmd.includes("health") && cmd.some((a) => a.startsWith("--tls-ca")))) {
            fail(w, `${where}: ${p}: with TLS, the probe must be 'retrace --tls-ca=... health'`);
          }
        } else {
          fail(w, `${where}: ${p} must be a grpc probe of the health service` +
                  (tls ? " (or, with TLS, exec 'retrace --tls-ca=... health')" : ""));
        }
      }

      if (!isRetrace(c)) continue;
      // The server: the image's ports and data folder, tokens required, the cluster flags' inputs.
      if (portOf(c, "grpc") !== defaults.grpcPort) fail(w, `${where}: port grpc must be ${defaults.grpcPort} (the image's)`);
      if (portOf(c, "metrics") !== defaults.metricsPort) fail(w, `${where}: port metrics must be ${defaults.metricsPort} (the image's)`);
      for (const f of IMAGE_FLAGS) {
        if (flag(args, f) !== undefined) fail(w, `${where}: ${f} is the image's (docker/Dockerfile); do not set it here`);
      }
      const data = mounts.find((m) => m.mountPath === defaults.dataDir);
      if (!data) fail(w, `${where}: nothing mounted at the data folder ${defaults.dataDir}`);
      if (w.kind === "StatefulSet" && data && !(volumes.get(data.name) || {}).pvc) {
        fail(w, `${where}: a StatefulSet's data folder must be a persistent volume (volumeClaimTemplates)`);
      }
      if (flag(args, "--auth-tokens") === undefined) fail(w, `${where}: --auth-tokens missing: every call but health needs a token`);
      const env = new Map((c.env || []).map((e) => [e.name, e]));
      const fromField = (n, path) => ((env.get(n) || {}).valueFrom || {}).fieldRef &&
                                     env.get(n).valueFrom.fieldRef.fieldPath === path;
      // The PostgreSQL store (replicas, and the sharded cluster's roles): its URI and password
      // from the Secret, and for a replica (a store without a role) its name in the store.
      const role = flag(args, "--role");
      const store = flag(args, "--store");
      if (w.kind === "Deployment" && store === undefined) {
        fail(w, `${where}: a Deployment's servers need --store: two servers never share a SQLite store`);
      }
      if (role !== undefined && store !== "$(RETRACE_STORE)") fail(w, `${where}: --role ${role} needs --store=$(RETRACE_STORE)`);
      if (store !== undefined) {
        if (store !== "$(RETRACE_STORE)") fail(w, `${where}: --store must be $(RETRACE_STORE) (from the Secret retrace-store)`);
        for (const n of ["RETRACE_STORE", "PGPASSWORD"]) {
          if (!env.has(n)) fail(w, `${where}: env ${n} missing (from the Secret retrace-store)`);
        }
      }
      if (store !== undefined && role === undefined &&
          !(flag(args, "--replica-id") === "$(POD_NAME)" && fromField("POD_NAME", "metadata.name"))) {
        fail(w, `${where}: a replica (--store) needs --replica-id=$(POD_NAME) with POD_NAME from metadata.name`);
      }
      if (role === "shard") {
        const want = `$(POD_NAME).${w.spec.serviceName}.$(NAMESPACE).svc:${defaults.grpcPort}`;
        if (flag(args, "--advertise") !== want) fail(w, `${where}: --advertise must be ${want}`);
        if (!fromField("POD_NAME", "metadata.name") || !fromField("NAMESPACE", "metadata.namespace")) {
          fail(w, `${where}: POD_NAME and NAMESPACE must come from the downward API`);
        }
      }
      const map = flag(args, "--shard-map");
      if (map !== undefined) {
        const m = mounts.find((x) => x.mountPath === map);
        if (!m || !(volumes.get(m.name) || {}).configMap) fail(w, `${where}: --shard-map=${map} is not a mounted ConfigMap`);
      }

      const ann = pod.metadata.annotations || {};
      if (ann["prometheus.io/scrape"] !== "true" || ann["prometheus.io/port"] !== String(defaults.metricsPort)) {
        fail(w, `pod template: prometheus.io/scrape "true" and prometheus.io/port "${defaults.metricsPort}" missing`);
      }
      if (!of("Service").some((s) => matches({ matchLabels: s.spec.selector }, labels) &&
                                     (s.spec.ports || []).some((p) => p.name === "metrics"))) {
        fail(w, "no Service with a metrics port selects its pods (a ServiceMonitor scrapes through one)");
      }
      const component = labels["app.kubernetes.io/component"];
      if (component === "server" || component === "frontend") {
        const svc = named("Service", "retrace");
        if (!svc || !matches({ matchLabels: svc.spec.selector }, labels)) {
          fail(w, "the Service `retrace` (what clients call) must select these pods");
        } else if (svc.spec.clusterIP !== "None") {
          fail(svc, "must be headless (clusterIP: None): clients balance gRPC calls over the pods' addresses");
        }
      }
    }

    // Every workload: a disruption budget, a network policy, HPA for Deployments only.
    if (!of("PodDisruptionBudget").some((p) => matches(p.spec.selector, labels))) {
      fail(w, "no PodDisruptionBudget selects its pods");
    }
    if (!of("NetworkPolicy").some((n) => matches(n.spec.podSelector, labels))) {
      fail(w, "no NetworkPolicy selects its pods");
    }
    const hpa = of("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.kind === w.kind &&
                                                         h.spec.scaleTargetRef.name === w.metadata.name);
    const serves = spec.containers.some(isRetrace);
    if (w.kind === "Deployment" && serves && !hpa) fail(w, "no HorizontalPodAutoscaler scales it");
    if (w.kind === "StatefulSet" && hpa) fail(w, "a StatefulSet is scaled by hand, not by an HPA (deploy/README.md)");
    if (w.kind === "StatefulSet") {
      const svc = named("Service", w.spec.serviceName);
      if (!svc || svc.spec.clusterIP !== "None" || !matches({ matchLabels: svc.spec.selector }, labels)) {
        fail(w, `serviceName ${w.spec.serviceName}: no headless Service of that name selects its pods`);
      }
    }
    if (!matches(w.spec.selector, labels)) fail(w, "its selector does not select its own pod template");

    // References resolve: ConfigMaps in the render, Secrets in the render or the operator's.
    const refs = [];
    for (const v of spec.volumes || []) {
      if (v.configMap) refs.push(["ConfigMap", v.configMap.name, v.configMap.optional]);
      if (v.secret) refs.push(["Secret", v.secret.secretName, v.secret.optional]);
    }
    for (const c of containers) {
      for (const e of c.env || []) {
        const from = e.valueFrom || {};
        if (from.secretKeyRef) refs.push(["Secret", from.secretKeyRef.name, from.secretKeyRef.optional]);
        if (from.configMapKeyRef) refs.push(["ConfigMap", from.configMapKeyRef.name, from.configMapKeyRef.optional]);
      }
    }
    for (const [kind, n, optional] of refs) {
      if (named(kind, n) || optional) continue;
      if (kind === "Secret" && OPERATOR_SECRETS.has(n)) continue;
      fail(w, `${kind} ${n} is neither in the render nor one the operator creates`);
    }
  }

  for (const h of of("HorizontalPodAutoscaler")) {
    if (!named(h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name)) {
      fail(h, `scales ${h.spec.scaleTargetRef.kind} ${h.spec.scaleTargetRef.name}, which is not in the render`);
    }
  }

  // The shard map names exactly the shard StatefulSet's pods, pod i in group i mod groups.
  const map = named("ConfigMap", "retrace-shard-map");
  if (map) {
    const groups = parseShardMap(Object.values(map.data || {})[0] || "");
    const shards = workloads.find((w) => (w.spec.template.metadata.labels || {})["app.kubernetes.io/component"] === "shard");
    if (!shards) {
      fail(map, "a shard map but no shard StatefulSet");
    } else {
      const want = [];
      const n = shards.spec.replicas;
      const g = groups.length;
      for (let i = 0; i < n; i++) {
        want[i % g] = (want[i % g] || []).concat(
          `${shards.metadata.name}-${i}.${shards.spec.serviceName}.${shards.metadata.namespace}.svc:${defaults.grpcPort}`);
      }
      if (g === 0 || n % g !== 0 || JSON.stringify(want) !== JSON.stringify(groups)) {
        fail(map, `the shard map does not match ${id(shards)} (${n} pods): want groups ` +
                  `${JSON.stringify(want)}, got ${JSON.stringify(groups)} ` +
                  "(regenerate it with deploy/tools/shard_map.sh)");
      }
    }
  }
  return errors;
}

module.exports = { checkRender, readDockerDefaults, parseShardMap, isRetrace, OPERATOR_SECRETS };
