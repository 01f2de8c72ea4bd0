// schema.js: checks a Kubernetes object against the API's schema, as the API server would.
//
// Two checks, both from the npm package kubernetes-models (and @kubernetes-models/prometheus-
// operator for the ServiceMonitor CRD), pinned in package-lock.json:
// - the package's JSON-schema validation: types, required fields, formats (quantities, ports);
// - unknown fields, which that validation lets through but the API server refuses (kubectl's
//   default --validate=strict): every field must be declared in the package's TypeScript
//   declarations (*.d.ts) of its type. A small reader of those files' regular shape below.
//
//   const { validateObject } = require("./schema");
//   const errors = validateObject(object);  // [] when it would be accepted
"use strict";

const fs = require("fs");
const path = require("path");

// Where an apiVersion's kinds live: the core group's are under kubernetes-models/v1.
function modulePath(apiVersion, kind) {
  if (apiVersion === "monitoring.coreos.com/v1") {
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`;
  }
  return `kubernetes-models/${apiVersion}/${kind}`;
}

// --- the .d.ts reader -----------------------------------------------------------------------

function tokenize(text) {
  text = text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
  const tokens = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_$][\w$]*|\d+|=>|[{}<>\[\]():;?|,=&.*-])/gy;
  let m;
  while ((m = re.exec(text)) !== null) tokens.push(m[1]);
  return tokens;
}

class Parser {
  constructor(tokens) {
    this.t = tokens;
    this.i = 0;
  }
  peek(k = 0) {
    return this.t[this.i + k];
  }
  next() {
    return this.t[this.i++];
  }
  expect(token) {
    const got = this.next();
    if (got !== token) throw new Error(`expected '${token}', got '${got}' at token ${this.i}`);
  }
  type() {
    const options = [this.primary()];
    while (this.peek() === "|") {
      this.next();
      options.push(this.primary());
    }
    return options.length === 1 ? options[0] : { kind: "union", options };
  }
  primary() {
    const token = this.next();
    if (token === "{") return this.members();
    if (token === "(") {
      const inner = this.type();
      this.expect(")");
      return inner;
    }
    if (token === "Array" && this.peek() === "<") {
      this.next();
      const element = this.type();
      this.expect(">");
      return { kind: "array", element };
    }
    if (/^["']/.test(token) || /^\d+$/.test(token)) return { kind: "scalar" };
    if (["string", "number", "boolean", "any", "unknown", "null", "object"].includes(token)) {
      return { kind: token === "any" || token === "unknown" || token === "object" ? "any" : "scalar" };
    }
    if (/^[A-Za-z_$]/.test(token)) {
      if (this.peek() === "[") {  // ISubject["kind"]: an indexed access, a scalar here
        this.next();
        this.next();
        this.expect("]");
        return { kind: "scalar" };
      }
      return { kind: "ref", name: token };
    }
    throw new Error(`unexpected '${token}' in a type at token ${this.i}`);
  }
  members() {  // after '{'
    const fields = new Map();
    let index = null;
    while (this.peek() !== "}") {
      if (this.peek() === "[") {  // [key: string]: T;
        this.next();
        this.next();
        this.expect(":");
        this.next();
        this.expect("]");
        this.expect(":");
        index = this.type();
      } else {
        const name = this.next().replace(/^["']|["']$/g, "");
        if (this.peek() === "?") this.next();
        this.expect(":");
        fields.set(name, this.type());
      }
      if (this.peek() === ";" || this.peek() === ",") this.next();
    }
    this.next();
    return { kind: "object", fields, index };
  }
}

// DeclarationFile: one .d.ts: its interfaces and type aliases, exported names and imports.
class DeclarationFile {
  constructor(file) {
    this.file = file;
    this.declarations = new Map();  // local name -> type
    this.exports = new Map();       // exported name -> local name
    this.imports = new Map();       // local name -> [module file, name exported there]
    const p = new Parser(tokenize(fs.readFileSync(file, "utf8")));
    while (p.peek() !== undefined) {
      const token = p.next();
      if (token === "import" && p.peek() === "{") {
        p.next();
        const names = [];
        while (p.peek() !== "}") {
          const name = p.next();
          let local = name;
          if (p.peek() === "as") {
            p.next();
            local = p.next();
          }
          names.push([name, local]);
          if (p.peek() === ",") p.next();
        }
        p.next();
        p.expect("from");
        const spec = p.next().slice(1, -1);
        for (const [name, local] of names) this.imports.set(local, [spec, name]);
      } else if (token === "interface") {
        const name = p.next();
        while (p.peek() !== "{") p.next();  // extends ... (none in these files)
        p.next();
        this.declarations.set(name, p.members());
      } else if (token === "type" && p.peek(1) === "=") {
        const name = p.next();
        p.next();
        this.declarations.set(name, p.type());
      } else if (token === "export" && p.peek() === "{") {
        p.next();
        while (p.peek() !== "}") {
          const local = p.next();
          let exported = local;
          if (p.peek() === "as") {
            p.next();
            exported = p.next();
          }
          this.exports.set(exported, local);
          if (p.peek() === ",") p.next();
        }
        p.next();
      } else if (token === "class") {  // skip the class body: its members repeat the interface
        while (p.peek() !== "{") p.next();
        p.next();
        for (let depth = 1; depth > 0;) {
          const t = p.next();
          if (t === "{") depth++;
          if (t === "}") depth--;
        }
      }
    }
  }
}

class Declarations {
  constructor(nodeModules) {
    this.nodeModules = nodeModules;
    this.files = new Map();
  }
  load(file) {
    if (!this.files.has(file)) this.files.set(file, new DeclarationFile(file));
    return this.files.get(file);
  }
  fileOf(spec, from) {
    const base = spec.startsWith(".") ? path.resolve(path.dirname(from), spec)
                                      : path.join(this.nodeModules, spec);
    return base + ".d.ts";
  }
  // resolve: the type that `name` means in `file` (following imports and export aliases).
  resolve(file, name) {
    const d = this.load(file);
    if (d.declarations.has(name)) return { file, type: d.declarations.get(name) };
    if (d.exports.has(name) && d.exports.get(name) !== name) return this.resolve(file, d.exports.get(name));
    if (d.imports.has(name)) {
      const [spec, exported] = d.imports.get(name);
      return this.resolve(this.fileOf(spec, file), exported);
    }
    if (["ModelData", "Model"].includes(name)) return { file, type: { kind: "any" } };
    throw new Error(`${file}: cannot resolve type ${name}`);
  }
}

// unknownFields: the paths of `value`'s fields that `type` (declared in `file`) does not have.
function unknownFields(declarations, file, type, value, at, out) {
  if (value === null || typeof value !== "object") return;
  switch (type.kind) {
    case "ref": {
      const resolved = declarations.resolve(file, type.name);
      unknownFields(declarations, resolved.file, resolved.type, value, at, out);
      return;
    }
    case "array":
      if (Array.isArray(value)) {
        value.forEach((v, i) => unknownFields(declarations, file, type.element, v, `${at}[${i}]`, out));
      }
      return;
    case "union": {  // the first option that is not a scalar (these unions mix at most one)
      const option = type.options.find((o) => o.kind !== "scalar");
      if (option) unknownFields(declarations, file, option, value, at, out);
      return;
    }
    case "object":
      if (Array.isArray(value)) return;
      for (const [key, v] of Object.entries(value)) {
        const field = type.fields.get(key) || type.index;
        if (!field) {
          out.push(`${at}.${key}: unknown field`);
        } else {
          unknownFields(declarations, file, field, v, `${at}.${key}`, out);
        }
      }
      return;
    default:
      return;
  }
}

// --- the check ------------------------------------------------------------------------------

let declarations = null;

// validateObject: the reasons the API server would refuse `object` ([] if none): an unknown
// apiVersion/kind, a schema violation, an unknown field.
function validateObject(object) {
  const id = `${object.kind}/${(object.metadata || {}).name}`;
  if (typeof object.apiVersion !== "string" || typeof object.kind !== "string") {
    return [`${id}: no apiVersion or kind`];
  }
  const spec = modulePath(object.apiVersion, object.kind);
  let model;
  try {
    model = require(spec)[object.kind];
  } catch (e) {
    return [`${id}: ${object.apiVersion} ${object.kind} is not a known API (${spec})`];
  }
  const errors = [];
  try {
    new model(object).validate();
  } catch (e) {
    errors.push(`${id}: ${e.message}`);
  }
  if (declarations === null) {
    const pkg = require.resolve("kubernetes-models/package.json");
    declarations = new Declarations(path.resolve(path.dirname(pkg), ".."));
  }
  const file = declarations.fileOf(spec, "/");
  const found = [];
  unknownFields(declarations, file, { kind: "ref", name: `I${object.kind}` }, object, id, found);
  return errors.concat(found);
}

module.exports = { validateObject };
