// validate.js RENDERED DEPLOY DOCKERFILE — checks deploy/'s renders (render.sh wrote them to
// RENDERED): every object against the Kubernetes API schemas (schema.js), every deployable
// kustomization against the invariants (invariants.js), and what spans several renders: each
// kustomization under DEPLOY was rendered, the two base pod templates agree, the GPU overlays
// share one patch. A CTest case (label deploy); run with NODE_PATH=<the npm ci'd node_modules>.
// Exit status 1 with every problem listed, 0 when there is none.
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const { validateObject } = require("./schema");
const { walk } = require("./walk");
const { checkRender, readDockerDefaults } = require("./invariants");

// Parts that are not deployed alone: the bases and the sharded topology's two halves.
const isPart = (name) => name === "base" || name.startsWith("base/") || name.startsWith("sharded/");
// Overlays whose Secret content is a documented demo value (deploy/postgres).
const isDemo = (name) => name === "postgres" || name.endsWith("-demo");

function readRender(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return d.toJS();
    })
    .filter((o) => o !== null);
}

function main() {
  const [rendered, deploy, dockerfile] = process.argv.slice(2);
  if (!dockerfile) {
    console.error("usage: node validate.js RENDERED DEPLOY DOCKERFILE");
    return 2;
  }
  const defaults = readDockerDefaults(dockerfile);
  const errors = [];
  const renders = new Map();
  for (const k of walk(deploy, (n) => n === "kustomization.yaml").sort()) {
    const name = path.relative(deploy, path.dirname(k));
    const file = path.join(rendered, name + ".yaml");
    if (!fs.existsSync(file)) {
      errors.push(`${name}: not rendered (${file} missing; run render.sh)`);
      continue;
    }
    renders.set(name, readRender(file));
  }

  let objects = 0;
  for (const [name, render] of renders) {
    for (const o of render) {
      objects++;
      for (const e of validateObject(o)) errors.push(`${name}: schema: ${e}`);
    }
    if (!isPart(name)) errors.push(...checkRender(render, { name, defaults, demo: isDemo(name) }));
  }

  // One pod template, written twice (kustomize cannot share it between kinds): the Deployment's
  // and the StatefulSet's must be the same but for the data volume.
  const template = (name, kind) => {
    const w = (renders.get(name) || []).find((o) => o.kind === kind);
    if (!w) return null;
    const t = structuredClone(w.spec.template);
    t.spec.volumes = t.spec.volumes.filter((v) => v.name !== "data");
    return t;
  };
  const a = template("base/deployment", "Deployment");
  const b = template("base/statefulset", "StatefulSet");
  if (!a || !b || JSON.stringify(a) !== JSON.stringify(b)) {
    errors.push("base/deployment and base/statefulset: their pod templates differ (other than the " +
                "data volume); change both alike");
  }
  const gpu = ["replicas-gpu", "sharded-gpu"].map((o) => path.join(deploy, "overlays", o, "gpu.yaml"));
  if (!gpu.every(fs.existsSync) || fs.readFileSync(gpu[0], "utf8") !== fs.readFileSync(gpu[1], "utf8")) {
    errors.push("overlays/replicas-gpu/gpu.yaml and overlays/sharded-gpu/gpu.yaml must be the same patch");
  }
  for (const name of ["overlays/replicas-gpu", "overlays/sharded-gpu"]) {
    const gpuPods = (renders.get(name) || []).filter((o) => o.kind === "Deployment" &&
      o.spec.template.spec.containers.some((c) => ((c.resources || {}).limits || {})["nvidia.com/gpu"]));
    if (gpuPods.length !== 1) errors.push(`${name}: expected one Deployment with nvidia.com/gpu, found ${gpuPods.length}`);
  }

  for (const e of errors) console.error(e);
  console.log(`validate: ${renders.size} renders, ${objects} objects (kubernetes-models ${require("kubernetes-models/package.json").version}), ` +
              `image defaults ${JSON.stringify(defaults)}: ${errors.length} problem(s)`);
  return errors.length ? 1 : 0;
}

process.exitCode = main();
