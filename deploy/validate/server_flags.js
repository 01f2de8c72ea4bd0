// server_flags.js RENDERED DEPLOY DOCKER SERVER — every flag the manifests and the image give
// the server is one the server has: a pod given an unknown flag exits at start ("Unknown command
// line flag"), which no schema or invariant would notice. The accepted flags come from the
// built binary SERVER (`retrace-server --helpfull`); the checked arguments are those of every
// retrace container in every render under RENDERED (render.sh; DEPLOY names the kustomizations)
// that runs the image's entrypoint or retrace-server, and the ENTRYPOINT and CMD of the
// Dockerfiles in DOCKER. Then mutations show the check reports what it should. A CTest case
// (label deploy); NODE_PATH as for validate.js. Exit status 1 with every problem listed.
"use strict";

const fs = require("fs");
const path = require("path");
const { walk } = require("./walk");
const { spawnSync } = require("child_process");
const YAML = require("yaml");
const { isRetrace } = require("./invariants");

// acceptedFlags: the server's flags, by absl name (underscores), with whether each is boolean
// (absl also takes --noNAME for those).
function acceptedFlags(server) {
  const r = spawnSync(server, ["--helpfull"], { encoding: "utf8" });
  if (r.error) throw new Error(`${server} --helpfull: ${r.error.message}`);
  const text = r.stdout + r.stderr;  // absl prints usage and exits 1
  const flags = new Map();
  const entries = text.split(/\n(?=\s+--[A-Za-z0-9_]+ \()/);
  for (const e of entries) {
    const m = e.match(/^\s+--([A-Za-z0-9_]+) \(/);
    if (m) flags.set(m[1], /default: (true|false);/.test(e));
  }
  if (!flags.has("listen") || !flags.has("config")) {
    throw new Error(`${server} --helpfull: no --listen or --config among its flags:\n${text}`);
  }
  return flags;
}

const absl = (flag) => flag.replace(/^--?/, "").replace(/-/g, "_");

// checkArgs: the problems of one argument list given to the server. `where` names it in the
// reports.
function checkArgs(args, accepted, where) {
  const errors = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("-")) {
      errors.push(`${where}: '${a}' is not a flag (the server takes no positional arguments)`);
      continue;
    }
    const eq = a.indexOf("=");
    const shown = eq < 0 ? a : a.slice(0, eq);
    let key = absl(shown);
    let known = accepted.has(key);
    if (!known && key.startsWith("no") && accepted.get(key.slice(2)) === true) {
      key = key.slice(2);
      known = true;
    }
    // --flag value: the next argument is the value unless the flag is boolean.
    if (known && eq < 0 && accepted.get(key) !== true) i++;
    if (known) continue;
    errors.push(`${where}: ${shown}: not a flag of the server (retrace-server --helpfull); ` +
                "a pod given it exits at start");
  }
  return errors;
}

// checkRender: the flags of every server container in one render.
function checkRender(objects, accepted, name) {
  const errors = [];
  for (const o of objects) {
    const spec = o.spec && o.spec.template && o.spec.template.spec;
    if (!spec) continue;
    for (const c of (spec.initContainers || []).concat(spec.containers || [])) {
      if (!isRetrace(c)) continue;
      const command = c.command || [];
      // Another program of the image (the CLI, say) is not the server.
      if (command.length && path.basename(command[0]) !== "retrace-server") continue;
      const where = `deploy/${name}: ${o.kind}/${o.metadata.name}: container ${c.name}`;
      errors.push(...checkArgs(command.slice(1).concat(c.args || []), accepted, where));
    }
  }
  return errors;
}

// checkDockerfile: the flags the image's ENTRYPOINT (and CMD, its default arguments) give the
// server. Both must be exec (JSON) form, which is what the check can read.
function checkDockerfile(file, text, accepted) {
  const errors = [];
  const last = {};
  for (const m of text.matchAll(/^(ENTRYPOINT|CMD)\s+(.*)$/gm)) last[m[1]] = m[2];
  const parse = (kind) => {
    if (last[kind] === undefined) return [];
    try {
      const v = JSON.parse(last[kind]);
      if (Array.isArray(v)) return v;
    } catch (e) { /* reported below */ }
    errors.push(`${file}: ${kind} ${last[kind]}: not exec (JSON) form; write it as ["...", ...]`);
    return [];
  };
  const entrypoint = parse("ENTRYPOINT");
  const cmd = parse("CMD");
  if (entrypoint.length && path.basename(entrypoint[0]) === "retrace-server") {
    errors.push(...checkArgs(entrypoint.slice(1).concat(cmd), accepted, `${file}: ENTRYPOINT`));
  }
  return errors;
}

function main() {
  const [rendered, deploy, docker, server] = process.argv.slice(2);
  if (!server) {
    console.error("usage: node server_flags.js RENDERED DEPLOY DOCKER SERVER");
    return 2;
  }
  const accepted = acceptedFlags(server);
  const errors = [];

  const renders = new Map();
  for (const k of walk(deploy, (n) => n === "kustomization.yaml").sort()) {
    const name = path.relative(deploy, path.dirname(k));
    const file = path.join(rendered, name + ".yaml");
    if (!fs.existsSync(file)) {
      errors.push(`deploy/${name}: not rendered (${file} missing; run render.sh)`);
      continue;
    }
    renders.set(name, YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
      .map((d) => d.toJS()).filter((o) => o !== null));
  }
  let containers = 0;
  for (const [name, objects] of renders) {
    errors.push(...checkRender(objects, accepted, name));
    for (const o of objects) {
      containers += ((o.spec && o.spec.template && o.spec.template.spec.containers) || []).filter(isRetrace).length;
    }
  }
  const dockerfiles = walk(docker, (n) => /^Dockerfile(\..*)?$/.test(n)).sort();
  const dockerText = new Map(dockerfiles.map((f) => [f, fs.readFileSync(f, "utf8")]));
  for (const [f, text] of dockerText) errors.push(...checkDockerfile(path.relative(path.dirname(docker), f), text, accepted));
  for (const e of errors) console.error(e);

  // Mutations: each must be reported, with the phrase given.
  let failures = 0;
  const expect = (what, errs, phrase) => {
    if (!errs.some((e) => e.includes(phrase))) {
      failures++;
      console.error(`FAILED: ${what}: expected a report containing "${phrase}", got: ${JSON.stringify(errs)}`);
    }
  };
  const serverOf = (objects, kind, n) => objects.find((o) => o.kind === kind && (!n || o.metadata.name === n))
    .spec.template.spec.containers.find(isRetrace);
  const mutate = (name, kind, edit, n) => {
    const objects = structuredClone(renders.get(name));
    edit(serverOf(objects, kind, n));
    return checkRender(objects, accepted, name);
  };
  expect("replicas given --rest-listen",
         mutate("replicas", "Deployment", (c) => c.args.push("--rest-listen=0.0.0.0:8080")),
         "deploy/replicas: Deployment/retrace: container retrace: --rest-listen: not a flag of the server");
  expect("single given --rest_listen 0.0.0.0:8080",
         mutate("single", "StatefulSet", (c) => c.args.push("--rest_listen", "0.0.0.0:8080")),
         "container retrace: --rest_listen: not a flag");
  expect("replicas given --role (misspelled --rol)",
         mutate("replicas", "Deployment", (c) => c.args.push("--rol=all")),
         "--rol: not a flag");
  expect("overlays/sharded-demo given a misspelled --shard-map",
         mutate("overlays/sharded-demo", "StatefulSet", (c) => c.args.push("--shardmap=/x"), "retrace-shard"),
         "--shardmap: not a flag");
  expect("retrace-server as the command",
         mutate("single", "StatefulSet", (c) => { c.command = ["retrace-server", "--bogus"]; }),
         "--bogus: not a flag");
  expect("a positional argument", mutate("single", "StatefulSet", (c) => c.args.push("serve")),
         "'serve' is not a flag");
  const dockerfile = dockerfiles.find((f) => path.basename(f) === "Dockerfile");
  expect("an ENTRYPOINT given --rest-listen",
         checkDockerfile("docker/Dockerfile", dockerText.get(dockerfile).replace(
           /^ENTRYPOINT \["retrace-server", /m, 'ENTRYPOINT ["retrace-server", "--rest-listen=:8080", '), accepted),
         "docker/Dockerfile: ENTRYPOINT: --rest-listen: not a flag");
  expect("a shard server given --role without its value's flag name",
         mutate("sharded", "StatefulSet", (c) => c.args.push("--roles=shard"), "retrace-shard"),
         "--roles: not a flag");
  const mustPass = [
    ["--noaccess_log (a boolean's negation)", ["--noaccess_log"]],
    ["--log-format json (the value apart)", ["--log-format", "json"]],
    ["--role shard --shard-map FILE (the sharded cluster's)", ["--role", "shard", "--shard-map", "/m"]],
  ];
  for (const [what, args] of mustPass) {
    const errs = checkArgs(args, accepted, what);
    if (errs.length) {
      failures++;
      console.error(`FAILED: ${what}: expected no report, got: ${JSON.stringify(errs)}`);
    }
  }

  console.log(`server_flags: ${accepted.size} flags of ${server}; ${renders.size} renders, ` +
              `${containers} server containers, ${dockerfiles.length} Dockerfiles: ${errors.length} problem(s); ` +
              `mutations: ${failures} not reported`);
  return errors.length || failures ? 1 : 0;
}

process.exitCode = main();
