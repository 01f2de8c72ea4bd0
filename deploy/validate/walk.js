// walk(dir, test): the files under dir (node_modules left out) whose names pass test.
const fs = require("fs");
const path = require("path");

function walk(dir, test, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && e.name !== "node_modules") walk(p, test, out);
    else if (test(e.name)) out.push(p);
  }
  return out;
}

module.exports = { walk };
