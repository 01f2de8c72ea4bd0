// web_assets.h — the web page's files (server/web/*.html, *.js, *.css), embedded in the binary at
// build time (embed_assets.cmake), so the page works with no network and no files beside the
// server.
//
// Thread-safety: immutable.
//
//   const WebAsset* page = FindWebAsset("index.html");  // null when there is none
#ifndef RETRACE_SERVER_WEB_WEB_ASSETS_H_
#define RETRACE_SERVER_WEB_WEB_ASSETS_H_

#include <string_view>

namespace retrace::web {

struct WebAsset {
  std::string_view name;          // "index.html", "app.js", "style.css"
  std::string_view content_type;  // from the name's extension
  std::string_view bytes;
};

// FindWebAsset: the embedded file `name` (no folders), or null.
const WebAsset* FindWebAsset(std::string_view name);

}  // namespace retrace::web

#endif  // RETRACE_SERVER_WEB_WEB_ASSETS_H_
