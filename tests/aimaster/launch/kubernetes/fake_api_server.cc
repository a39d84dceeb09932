#include "tests/aimaster/launch/kubernetes/fake_api_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace elasticbatch::testing {

using nlohmann::json;

struct FakeApiServer::Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  std::thread thread;
  std::atomic<bool> finished{false};

  // Up to `n` bytes; 0 at the end of the stream or on an error.
  size_t Read(char* data, size_t n) {
    if (ssl != nullptr) {
      const int got = SSL_read(ssl, data, static_cast<int>(n));
      return got > 0 ? static_cast<size_t>(got) : 0;
    }
    for (;;) {
      const ssize_t got = recv(fd, data, n, 0);
      if (got < 0 && errno == EINTR) continue;
      return got > 0 ? static_cast<size_t>(got) : 0;
    }
  }

  bool Write(absl::string_view data) {
    while (!data.empty()) {
      if (ssl != nullptr) {
        const int put = SSL_write(ssl, data.data(), static_cast<int>(data.size()));
        if (put <= 0) return false;
        data.remove_prefix(static_cast<size_t>(put));
        continue;
      }
      const ssize_t put = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) return false;
      data.remove_prefix(static_cast<size_t>(put));
    }
    return true;
  }

  bool WriteChunk(absl::string_view data) {
    return Write(absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n"));
  }
};

namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 16 * 1024 * 1024;

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

absl::string_view StatusReason(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    default:
      return "Unknown";
  }
}

json StatusObject(int code, absl::string_view reason, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", std::string(reason)},
          {"code", code}};
}

std::string PercentDecode(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int value = 0;
      if (absl::SimpleHexAtoi(in.substr(i + 1, 2), &value)) {
        out += static_cast<char>(value);
        i += 2;
        continue;
      }
    }
    out += in[i] == '+' ? ' ' : in[i];
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(absl::string_view query) {
  std::map<std::string, std::string> out;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    out[PercentDecode(kv.first)] = PercentDecode(kv.second);
  }
  return out;
}

// "pods" or "elasticbatchjobs.inference.kubedl.io", as the API names them in
// messages.
std::string ResourceOf(const std::string& collection) {
  const std::vector<std::string> parts =
      absl::StrSplit(collection, '/', absl::SkipEmpty());
  if (parts.empty()) return "";
  if (parts[0] == "apis" && parts.size() >= 2)
    return absl::StrCat(parts.back(), ".", parts[1]);
  return parts.back();
}

std::string NamespaceOf(const std::string& collection) {
  const std::vector<std::string> parts =
      absl::StrSplit(collection, '/', absl::SkipEmpty());
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] == "namespaces") return parts[i + 1];
  }
  return "";
}

std::string KindOf(const std::string& collection) {
  const std::vector<std::string> parts =
      absl::StrSplit(collection, '/', absl::SkipEmpty());
  std::string plural = parts.empty() ? "" : parts.back();
  if (plural == "pods") return "Pod";
  if (plural == "services") return "Service";
  if (absl::EndsWith(plural, "s")) plural.pop_back();
  if (!plural.empty()) plural[0] = absl::ascii_toupper(plural[0]);
  return plural;
}

std::string ApiVersionOf(const std::string& collection) {
  const std::vector<std::string> parts =
      absl::StrSplit(collection, '/', absl::SkipEmpty());
  if (parts.size() >= 3 && parts[0] == "apis")
    return absl::StrCat(parts[1], "/", parts[2]);
  return parts.size() >= 2 ? parts[1] : "v1";
}

std::string NameOf(const json& object) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  const json& meta = object["metadata"];
  if (!meta.is_object() || !meta.contains("name") || !meta["name"].is_string()) return "";
  return meta["name"].get<std::string>();
}

json LabelsOf(const json& object) {
  if (object.is_object() && object.contains("metadata") &&
      object["metadata"].is_object() && object["metadata"].contains("labels")) {
    return object["metadata"]["labels"];
  }
  return json();
}

std::optional<std::string> LabelValue(const json& labels, const std::string& key) {
  if (!labels.is_object()) return std::nullopt;
  const auto it = labels.find(key);
  if (it == labels.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

void ApplyMergePatch(json& target, const json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it->is_null()) {
      target.erase(it.key());
    } else {
      ApplyMergePatch(target[it.key()], *it);
    }
  }
}

bool MatchesLabelSelector(const std::string& selector, const json& labels,
                          std::string* error) {
  // Requirements are separated by commas outside parentheses.
  std::vector<std::string> requirements;
  std::string current;
  int depth = 0;
  for (char c : selector) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      requirements.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty() || !requirements.empty()) requirements.push_back(current);
  const auto fail = [&](const std::string& requirement) {
    *error = absl::StrCat("unable to parse requirement: \"", requirement, "\"");
    return false;
  };
  bool all = true;
  for (const std::string& raw : requirements) {
    const std::string req(absl::StripAsciiWhitespace(raw));
    if (req.empty()) return fail(raw);
    const size_t paren = req.find('(');
    if (paren != std::string::npos) {
      if (req.back() != ')') return fail(req);
      const std::vector<std::string> head =
          absl::StrSplit(req.substr(0, paren), ' ', absl::SkipWhitespace());
      if (head.size() != 2 || (head[1] != "in" && head[1] != "notin")) return fail(req);
      std::vector<std::string> values;
      for (absl::string_view v :
           absl::StrSplit(req.substr(paren + 1, req.size() - paren - 2), ',')) {
        values.emplace_back(absl::StripAsciiWhitespace(v));
      }
      const std::optional<std::string> value = LabelValue(labels, head[0]);
      const bool in =
          value && std::find(values.begin(), values.end(), *value) != values.end();
      all = all && (head[1] == "in" ? in : !in);
      continue;
    }
    size_t op = req.find("!=");
    if (op != std::string::npos) {
      const std::string key(absl::StripAsciiWhitespace(req.substr(0, op)));
      const std::string want(absl::StripAsciiWhitespace(req.substr(op + 2)));
      if (key.empty()) return fail(req);
      all = all && LabelValue(labels, key) != want;
      continue;
    }
    op = req.find('=');
    if (op != std::string::npos) {
      const std::string key(absl::StripAsciiWhitespace(req.substr(0, op)));
      size_t value_start = op + 1;
      if (value_start < req.size() && req[value_start] == '=') ++value_start;
      const std::string want(absl::StripAsciiWhitespace(req.substr(value_start)));
      if (key.empty()) return fail(req);
      all = all && LabelValue(labels, key) == want;
      continue;
    }
    if (req[0] == '!') {
      const std::string key(absl::StripAsciiWhitespace(req.substr(1)));
      if (key.empty()) return fail(req);
      all = all && !LabelValue(labels, key).has_value();
      continue;
    }
    if (req.find(' ') != std::string::npos) return fail(req);
    all = all && LabelValue(labels, req).has_value();
  }
  return all;
}

FakeApiServer::FakeApiServer(FakeApiServerOptions options)
    : options_(std::move(options)) {}

FakeApiServer::~FakeApiServer() {
  Stop();
  if (ssl_ctx_ != nullptr) SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx_));
}

absl::Status FakeApiServer::Start() {
  // A client that goes away mid-write must not kill the test binary.
  signal(SIGPIPE, SIG_IGN);
  if (!options_.tls_cert_file.empty()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    ssl_ctx_ = ctx;
    if (ctx == nullptr ||
        SSL_CTX_use_certificate_chain_file(ctx, options_.tls_cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, options_.tls_key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1) {
      return absl::FailedPreconditionError(
          "fake API server: cannot load its certificate");
    }
    if (!options_.client_ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, options_.client_ca_file.c_str(), nullptr) !=
          1) {
        return absl::FailedPreconditionError(
            "fake API server: cannot load the client CA");
      }
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::InternalError(std::strerror(errno));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 64) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError(absl::StrCat("fake API server: ", std::strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void FakeApiServer::Stop() {
  std::vector<std::unique_ptr<Connection>> connections;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& c : connections_) shutdown(c->fd, SHUT_RDWR);
    connections = std::move(connections_);
  }
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  {
    // The accept loop may have added one after we took the list.
    absl::MutexLock lock(&mu_);
    for (auto& c : connections_) {
      shutdown(c->fd, SHUT_RDWR);
      connections.push_back(std::move(c));
    }
    connections_.clear();
  }
  for (auto& c : connections) {
    if (c->thread.joinable()) c->thread.join();
    if (c->ssl != nullptr) SSL_free(c->ssl);
    close(c->fd);
  }
}

std::string FakeApiServer::url() const {
  return absl::StrCat(ssl_ctx_ != nullptr ? "https" : "http", "://127.0.0.1:", port_);
}

void FakeApiServer::AcceptLoop() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    std::vector<std::unique_ptr<Connection>> finished;
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    // Reap connections whose thread has ended.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if ((*it)->finished.load()) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& c : finished) {
      c->thread.join();
      if (c->ssl != nullptr) SSL_free(c->ssl);
      close(c->fd);
    }
    if (connections_.size() >= static_cast<size_t>(kMaxConnections)) {
      close(fd);
      continue;
    }
    auto connection = std::make_unique<Connection>();
    connection->fd = fd;
    Connection* raw = connection.get();
    connections_.push_back(std::move(connection));
    raw->thread = std::thread([this, raw] {
      Serve(raw);
      // The peer sees the end at once; the descriptor is closed when the
      // connection is reaped, so no other thread can hit a reused number.
      shutdown(raw->fd, SHUT_RDWR);
      raw->finished.store(true);
    });
  }
}

void FakeApiServer::Serve(Connection* connection) {
  if (ssl_ctx_ != nullptr) {
    connection->ssl = SSL_new(static_cast<SSL_CTX*>(ssl_ctx_));
    SSL_set_fd(connection->ssl, connection->fd);
    if (SSL_accept(connection->ssl) != 1) {
      ERR_clear_error();
      shutdown(connection->fd, SHUT_RDWR);
      return;
    }
  }
  std::string buffer;
  char chunk[16 * 1024];
  for (;;) {
    // Headers.
    size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (buffer.size() > kMaxHeaderBytes) return;
      const size_t got = connection->Read(chunk, sizeof(chunk));
      if (got == 0) return;
      buffer.append(chunk, got);
    }
    const std::vector<std::string> lines =
        absl::StrSplit(absl::string_view(buffer).substr(0, end), "\r\n");
    const std::vector<std::string> request_line = absl::StrSplit(lines[0], ' ');
    if (request_line.size() != 3) return;
    std::map<std::string, std::string> headers;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    buffer.erase(0, end + 4);
    // Body (Content-Length only: the client sends nothing chunked).
    size_t length = 0;
    if (headers.count("content-length") != 0 &&
        !absl::SimpleAtoi(headers["content-length"], &length)) {
      return;
    }
    if (length > kMaxBodyBytes) return;
    if (headers["expect"] == "100-continue") {
      if (!connection->Write("HTTP/1.1 100 Continue\r\n\r\n")) return;
    }
    while (buffer.size() < length) {
      const size_t got = connection->Read(chunk, sizeof(chunk));
      if (got == 0) return;
      buffer.append(chunk, got);
    }
    const std::string body = buffer.substr(0, length);
    buffer.erase(0, length);
    if (!Handle(connection, request_line[0], request_line[1], headers, body)) return;
    if (absl::AsciiStrToLower(headers["connection"]) == "close") return;
  }
}

bool FakeApiServer::Handle(Connection* connection, const std::string& method,
                           const std::string& target,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body) {
  const size_t question = target.find('?');
  const std::string path = target.substr(0, question);
  const std::string query =
      question == std::string::npos ? "" : target.substr(question + 1);
  const std::map<std::string, std::string> params = ParseQuery(query);
  const auto header = [&](const char* name) {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  };

  Response response;
  bool handled = false;
  size_t request_index;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back({method, path, query, header("authorization"), 0});
    request_index = requests_.size() - 1;
    for (Injected& injected : injected_) {
      if (injected.remaining > 0 &&
          (injected.method.empty() || injected.method == method) &&
          absl::StartsWith(path, injected.path_prefix)) {
        --injected.remaining;
        response.status = injected.status;
        response.retry_after = injected.retry_after;
        std::string message = absl::StrCat("injected ", injected.status);
        if (injected.status == 403) {
          message = absl::StrCat(
              ResourceOf(path),
              " is forbidden: User \"system:serviceaccount:", "test:aimaster\" cannot ",
              method, " resource in namespace");
        }
        response.body =
            StatusObject(injected.status, StatusReason(injected.status), message);
        handled = true;
        break;
      }
    }
  }
  if (!handled && !options_.required_token.empty() &&
      header("authorization") != absl::StrCat("Bearer ", options_.required_token)) {
    response.status = 401;
    response.body = StatusObject(401, "Unauthorized", "Unauthorized");
    handled = true;
  }

  // Route: /api/V/namespaces/NS/PLURAL[/NAME] or /apis/G/V/namespaces/NS/PLURAL[/NAME].
  std::string collection, name;
  if (!handled) {
    const std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
    size_t ns_at = 0;
    if (parts.size() >= 5 && parts[0] == "api") ns_at = 2;
    if (parts.size() >= 6 && parts[0] == "apis") ns_at = 3;
    // A pod's log: /api/v1/namespaces/NS/pods/NAME/log.
    if (ns_at == 2 && parts.size() == 7 && parts[2] == "namespaces" &&
        parts[4] == "pods" && parts[6] == "log" && method == "GET") {
      response = PodLog(absl::StrCat("/api/v1/namespaces/", parts[3], "/pods"), parts[3],
                        parts[5], params);
      handled = true;
      ns_at = 0;  // routed
    } else if (ns_at == 0 || parts[ns_at] != "namespaces" || parts.size() > ns_at + 4) {
      response.status = 404;
      response.body = StatusObject(404, "NotFound",
                                   "the server could not find the requested resource");
      handled = true;
    } else if (ns_at != 0) {
      collection =
          absl::StrCat("/", absl::StrJoin(parts.begin(), parts.begin() + ns_at + 3, "/"));
      if (parts.size() == ns_at + 4) name = parts[ns_at + 3];
    }
  }
  if (!handled && method == "GET" && name.empty()) {
    const auto watch = params.find("watch");
    if (watch != params.end() && (watch->second == "1" || watch->second == "true")) {
      {
        absl::MutexLock lock(&mu_);
        requests_[request_index].status = 200;
      }
      return ServeWatch(connection, collection, params);
    }
  }
  if (!handled) {
    response = HandleObjectRequest(method, collection, name, query, headers, body);
  }
  {
    absl::MutexLock lock(&mu_);
    requests_[request_index].status = response.status;
  }
  const std::string payload = response.text ? *response.text : response.body.dump();
  std::string head = absl::StrCat(
      "HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status),
      "\r\nContent-Type: ", response.text ? "text/plain" : "application/json",
      "\r\nContent-Length: ", payload.size(), "\r\n");
  if (!response.retry_after.empty()) {
    absl::StrAppend(&head, "Retry-After: ", response.retry_after, "\r\n");
  }
  absl::StrAppend(&head, "\r\n");
  return connection->Write(head + payload);
}

FakeApiServer::Response FakeApiServer::HandleObjectRequest(
    const std::string& method, const std::string& collection, const std::string& name,
    const std::string& query, const std::map<std::string, std::string>& headers,
    const std::string& body) {
  Response r;
  const std::string resource = ResourceOf(collection);
  const auto fail = [&](int code, const std::string& message) {
    r.status = code;
    r.body = StatusObject(code, StatusReason(code), message);
    return r;
  };
  const auto not_found = [&] {
    return fail(404, absl::StrCat(resource, " \"", name, "\" not found"));
  };
  const auto content_type = [&] {
    const auto it = headers.find("content-type");
    return it == headers.end() ? std::string() : it->second;
  };
  absl::MutexLock lock(&mu_);
  Collection& objects = collections_[collection];

  if (method == "GET" && name.empty()) {
    const std::map<std::string, std::string> params = ParseQuery(query);
    const auto selector = params.find("labelSelector");
    json items = json::array();
    for (const auto& [n, object] : objects.objects) {
      std::string error;
      if (selector != params.end() &&
          !MatchesLabelSelector(selector->second, LabelsOf(object), &error)) {
        if (!error.empty()) return fail(400, error);
        continue;
      }
      items.push_back(object);
    }
    r.body = {{"kind", KindOf(collection) + "List"},
              {"apiVersion", ApiVersionOf(collection)},
              {"metadata", {{"resourceVersion", std::to_string(version_)}}},
              {"items", std::move(items)}};
    return r;
  }
  if (method == "GET") {
    const auto it = objects.objects.find(name);
    if (it == objects.objects.end()) return not_found();
    r.body = it->second;
    return r;
  }
  if (method == "POST" && name.empty()) {
    json object = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!object.is_object()) return fail(400, "the request body is not a JSON object");
    json& meta = object["metadata"];
    if (!meta.is_object()) meta = json::object();
    const std::string ns = NamespaceOf(collection);
    if (meta.contains("namespace") && meta["namespace"] != ns) {
      return fail(
          400,
          "the namespace of the provided object does not match the namespace sent on "
          "the request");
    }
    const bool has_name = meta.contains("name") && meta["name"].is_string() &&
                          !meta["name"].get<std::string>().empty();
    const bool has_generate =
        meta.contains("generateName") && meta["generateName"].is_string();
    if (!has_name && !has_generate) {
      return fail(422,
                  absl::StrCat(KindOf(collection),
                               " \"\" is invalid: metadata.name: Required value: name or "
                               "generateName is required"));
    }
    if (has_name && objects.objects.count(meta["name"].get<std::string>()) != 0) {
      r = fail(409, absl::StrCat(resource, " \"", meta["name"].get<std::string>(),
                                 "\" already exists"));
      r.body["reason"] = "AlreadyExists";
      return r;
    }
    r.status = 201;
    r.body = CreateLocked(collection, std::move(object));
    return r;
  }
  if (method == "PATCH" && !name.empty()) {
    if (content_type() != "application/merge-patch+json") {
      return fail(
          415,
          "the body of the request was in an unknown format - accepted media types "
          "include: application/json-patch+json, application/merge-patch+json, "
          "application/apply-patch+yaml");
    }
    const auto it = objects.objects.find(name);
    if (it == objects.objects.end()) return not_found();
    const json patch = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (patch.is_discarded()) return fail(400, "the patch is not JSON");
    json object = it->second;
    const json keep = object["metadata"];
    ApplyMergePatch(object, patch);
    if (!object.is_object()) return fail(422, "the patch does not leave an object");
    for (const char* field : {"name", "namespace", "uid", "creationTimestamp"}) {
      if (keep.contains(field)) object["metadata"][field] = keep[field];
    }
    r.body = StoreLocked(collection, std::move(object), "MODIFIED");
    return r;
  }
  if (method == "DELETE" && !name.empty()) {
    const auto it = objects.objects.find(name);
    if (it == objects.objects.end()) return not_found();
    const json options = json::parse(body.empty() ? "{}" : body, nullptr, false);
    if (options.is_object() && options.contains("preconditions")) {
      const json& pre = options["preconditions"];
      const json& meta = it->second["metadata"];
      if (pre.contains("uid") && pre["uid"] != meta["uid"]) {
        return fail(409, absl::StrCat("Precondition failed: UID in precondition: ",
                                      pre["uid"].dump(),
                                      ", UID in object meta: ", meta["uid"].dump()));
      }
      if (pre.contains("resourceVersion") &&
          pre["resourceVersion"] != meta["resourceVersion"]) {
        return fail(409,
                    absl::StrCat("Precondition failed: ResourceVersion in precondition: ",
                                 pre["resourceVersion"].dump(),
                                 ", ResourceVersion in object meta: ",
                                 meta["resourceVersion"].dump()));
      }
    }
    if (options_.graceful_pod_deletion && absl::EndsWith(collection, "/pods")) {
      json& pod = it->second;
      const bool scheduled = pod.contains("spec") && pod["spec"].is_object() &&
                             pod["spec"].value("nodeName", "") != "";
      int64_t grace = 30;
      if (pod.contains("spec") && pod["spec"].contains("terminationGracePeriodSeconds") &&
          pod["spec"]["terminationGracePeriodSeconds"].is_number_integer()) {
        grace = pod["spec"]["terminationGracePeriodSeconds"].get<int64_t>();
      }
      if (options.is_object() && options.contains("gracePeriodSeconds") &&
          options["gracePeriodSeconds"].is_number_integer()) {
        grace = options["gracePeriodSeconds"].get<int64_t>();
      }
      if (scheduled && grace > 0) {
        if (pod["metadata"].contains("deletionTimestamp")) {
          r.body = pod;  // already terminating
          return r;
        }
        json marked = pod;
        marked["metadata"]["deletionTimestamp"] =
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + absl::Seconds(grace),
                             absl::UTCTimeZone());
        marked["metadata"]["deletionGracePeriodSeconds"] = grace;
        r.body = StoreLocked(collection, std::move(marked), "MODIFIED");
        return r;
      }
    }
    r.body = it->second;
    RemoveLocked(collection, name);
    return r;
  }
  return fail(405, absl::StrCat("method ", method, " is not supported here"));
}

void FakeApiServer::SetPodLogSource(std::function<std::optional<std::string>(
                                        const std::string& ns, const std::string& pod)>
                                        source) {
  absl::MutexLock lock(&mu_);
  pod_log_source_ = std::move(source);
}

FakeApiServer::Response FakeApiServer::PodLog(
    const std::string& collection, const std::string& ns, const std::string& name,
    const std::map<std::string, std::string>& params) {
  Response r;
  std::function<std::optional<std::string>(const std::string&, const std::string&)>
      source;
  {
    absl::MutexLock lock(&mu_);
    const Collection& pods = collections_[collection];
    if (pods.objects.count(name) == 0) {
      r.status = 404;
      r.body =
          StatusObject(404, "NotFound", absl::StrCat("pods \"", name, "\" not found"));
      return r;
    }
    source = pod_log_source_;
  }
  std::string text = source ? source(ns, name).value_or("") : "";
  // tailLines first, then limitBytes, as the API server applies them.
  int64_t tail = -1, limit = -1;
  if (const auto it = params.find("tailLines"); it != params.end()) {
    (void)absl::SimpleAtoi(it->second, &tail);
  }
  if (const auto it = params.find("limitBytes"); it != params.end()) {
    (void)absl::SimpleAtoi(it->second, &limit);
  }
  if (tail >= 0) {
    size_t at = text.size();
    if (at > 0 && text.back() == '\n') --at;
    for (int64_t lines = 0; at > 0; --at) {
      if (text[at - 1] == '\n' && ++lines == tail) break;
    }
    text = text.substr(at);
  }
  if (limit >= 0 && static_cast<int64_t>(text.size()) > limit) {
    text.resize(static_cast<size_t>(limit));
  }
  r.text = std::move(text);
  return r;
}

json FakeApiServer::CreateLocked(const std::string& collection, json object) {
  Collection& objects = collections_[collection];
  json& meta = object["metadata"];
  if (!meta.contains("name") || !meta["name"].is_string() ||
      meta["name"].get<std::string>().empty()) {
    // generateName: the prefix and five characters, as the API server does.
    static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    std::string name;
    do {
      ++uid_counter_;
      name = meta["generateName"].get<std::string>();
      uint64_t x = static_cast<uint64_t>(uid_counter_) * 0x9e3779b97f4a7c15ULL;
      for (int i = 0; i < 5; ++i) {
        name += kAlphabet[x % (sizeof(kAlphabet) - 1)];
        x /= (sizeof(kAlphabet) - 1);
      }
    } while (objects.objects.count(name) != 0);
    meta["name"] = name;
  }
  ++uid_counter_;
  meta["uid"] = absl::StrFormat("00000000-0000-4000-8000-%012d", uid_counter_);
  meta["namespace"] = NamespaceOf(collection);
  meta["creationTimestamp"] =
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  if (!object.contains("kind")) object["kind"] = KindOf(collection);
  if (!object.contains("apiVersion")) object["apiVersion"] = ApiVersionOf(collection);
  return StoreLocked(collection, std::move(object), "ADDED");
}

json FakeApiServer::StoreLocked(const std::string& collection, json object,
                                const std::string& type) {
  ++version_;
  object["metadata"]["resourceVersion"] = std::to_string(version_);
  collections_[collection].objects[NameOf(object)] = object;
  events_.push_back({version_, collection, type, object});
  return object;
}

void FakeApiServer::RemoveLocked(const std::string& collection, const std::string& name) {
  Collection& objects = collections_[collection];
  const auto it = objects.objects.find(name);
  if (it == objects.objects.end()) return;
  json object = std::move(it->second);
  objects.objects.erase(it);
  ++version_;
  object["metadata"]["resourceVersion"] = std::to_string(version_);
  events_.push_back({version_, collection, "DELETED", std::move(object)});
}

bool FakeApiServer::ServeWatch(Connection* connection, const std::string& collection,
                               const std::map<std::string, std::string>& query) {
  const auto param = [&](const char* key) {
    const auto it = query.find(key);
    return it == query.end() ? std::string() : it->second;
  };
  const std::string selector = param("labelSelector");
  const bool bookmarks = param("allowWatchBookmarks") == "true";
  int timeout_seconds = 1800;
  if (!param("timeoutSeconds").empty() &&
      !absl::SimpleAtoi(param("timeoutSeconds"), &timeout_seconds)) {
    timeout_seconds = 0;  // as good as a refusal: the stream ends at once
  }
  const absl::Time end = absl::Now() + absl::Seconds(timeout_seconds);
  const std::string rv_param = param("resourceVersion");
  const auto matches = [&](const json& object) {
    std::string error;
    return selector.empty() || MatchesLabelSelector(selector, LabelsOf(object), &error);
  };
  const auto event_line = [](const std::string& type, const json& object) {
    return json{{"type", type}, {"object", object}}.dump() + "\n";
  };

  std::vector<std::string> initial;
  size_t next = 0;  // index into events_
  int64_t drop_generation, bookmark_generation, sent_version;
  bool gone = false;
  {
    absl::MutexLock lock(&mu_);
    drop_generation = drop_generation_;
    bookmark_generation = bookmark_generation_;
    int64_t from = 0;
    if (rv_param.empty() || rv_param == "0") {
      for (const auto& [name, object] : collections_[collection].objects) {
        if (matches(object)) initial.push_back(event_line("ADDED", object));
      }
      from = version_;
    } else if (!absl::SimpleAtoi(rv_param, &from)) {
      from = -1;
    }
    if (from >= 0 && from < compacted_) gone = true;
    if (from < 0) gone = true;
    next = events_.size();
    while (next > 0 && events_[next - 1].version > from) --next;
    sent_version = std::max<int64_t>(from, 0);
    ++open_watches_;
  }
  struct Closer {
    FakeApiServer* server;
    ~Closer() {
      absl::MutexLock lock(&server->mu_);
      --server->open_watches_;
    }
  } closer{this};

  if (!connection->Write(
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
          "chunked\r\n\r\n")) {
    return false;
  }
  if (gone) {
    const json status = StatusObject(410, "Expired",
                                     absl::StrCat("too old resource version: ", rv_param,
                                                  " (", resource_version(), ")"));
    return connection->WriteChunk(event_line("ERROR", status)) &&
           connection->Write("0\r\n\r\n");
  }
  for (const std::string& line : initial) {
    if (!connection->WriteChunk(line)) return false;
  }
  absl::Time next_bookmark = absl::Now() + options_.bookmark_interval;
  for (;;) {
    std::vector<std::string> lines;
    bool dropped = false, stopping = false, send_bookmark = false;
    {
      absl::MutexLock lock(&mu_);
      const auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || drop_generation_ != drop_generation ||
               bookmark_generation_ != bookmark_generation || next < events_.size();
      };
      const absl::Time wake = bookmarks ? std::min(end, next_bookmark) : end;
      mu_.AwaitWithDeadline(absl::Condition(&ready), wake);
      stopping = stopping_;
      dropped = drop_generation_ != drop_generation;
      if (bookmark_generation_ != bookmark_generation) {
        bookmark_generation = bookmark_generation_;
        send_bookmark = bookmarks;
      }
      for (; next < events_.size(); ++next) {
        const Event& event = events_[next];
        sent_version = event.version;
        if (event.collection == collection && matches(event.object)) {
          lines.push_back(event_line(event.type, event.object));
        }
      }
    }
    if (stopping || dropped) {
      shutdown(connection->fd, SHUT_RDWR);
      return false;
    }
    for (const std::string& line : lines) {
      if (!connection->WriteChunk(line)) return false;
    }
    const absl::Time now = absl::Now();
    if (bookmarks && (send_bookmark || now >= next_bookmark)) {
      const json bookmark = {
          {"kind", KindOf(collection)},
          {"apiVersion", ApiVersionOf(collection)},
          {"metadata", {{"resourceVersion", std::to_string(sent_version)}}}};
      if (!connection->WriteChunk(event_line("BOOKMARK", bookmark))) return false;
      next_bookmark = now + options_.bookmark_interval;
    }
    if (now >= end) return connection->Write("0\r\n\r\n");
  }
}

void FakeApiServer::InjectErrors(const std::string& method,
                                 const std::string& path_prefix, int status, int count,
                                 const std::string& retry_after) {
  absl::MutexLock lock(&mu_);
  injected_.push_back({method, path_prefix, status, count, retry_after});
}

void FakeApiServer::ClearInjectedErrors() {
  absl::MutexLock lock(&mu_);
  injected_.clear();
}

int FakeApiServer::CountRequests(const std::string& method,
                                 const std::string& path_prefix) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const FakeRequest& r : requests_) {
    if ((method.empty() || r.method == method) && absl::StartsWith(r.path, path_prefix))
      ++n;
  }
  return n;
}

std::vector<FakeRequest> FakeApiServer::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int FakeApiServer::OpenWatches() const {
  absl::MutexLock lock(&mu_);
  return open_watches_;
}

void FakeApiServer::DropWatches() {
  absl::MutexLock lock(&mu_);
  ++drop_generation_;
}

void FakeApiServer::Compact() {
  absl::MutexLock lock(&mu_);
  compacted_ = version_;
}

void FakeApiServer::SendBookmarks() {
  absl::MutexLock lock(&mu_);
  ++bookmark_generation_;
}

int64_t FakeApiServer::resource_version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

std::optional<json> FakeApiServer::Get(const std::string& collection,
                                       const std::string& name) const {
  absl::MutexLock lock(&mu_);
  const auto c = collections_.find(collection);
  if (c == collections_.end()) return std::nullopt;
  const auto it = c->second.objects.find(name);
  if (it == c->second.objects.end()) return std::nullopt;
  return it->second;
}

std::vector<json> FakeApiServer::List(const std::string& collection) const {
  absl::MutexLock lock(&mu_);
  std::vector<json> out;
  const auto c = collections_.find(collection);
  if (c == collections_.end()) return out;
  for (const auto& [name, object] : c->second.objects) out.push_back(object);
  return out;
}

json FakeApiServer::Put(const std::string& collection, json object) {
  absl::MutexLock lock(&mu_);
  const std::string name = NameOf(object);
  const auto& objects = collections_[collection].objects;
  const auto it = objects.find(name);
  if (it == objects.end()) return CreateLocked(collection, std::move(object));
  for (const char* field : {"uid", "namespace", "creationTimestamp"}) {
    object["metadata"][field] = it->second["metadata"][field];
  }
  return StoreLocked(collection, std::move(object), "MODIFIED");
}

bool FakeApiServer::Mutate(const std::string& collection, const std::string& name,
                           const std::function<void(json&)>& change) {
  absl::MutexLock lock(&mu_);
  auto& objects = collections_[collection].objects;
  const auto it = objects.find(name);
  if (it == objects.end()) return false;
  json object = it->second;
  change(object);
  object["metadata"]["name"] = name;
  StoreLocked(collection, std::move(object), "MODIFIED");
  return true;
}

bool FakeApiServer::Remove(const std::string& collection, const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (collections_[collection].objects.count(name) == 0) return false;
  RemoveLocked(collection, name);
  return true;
}

}  // namespace elasticbatch::testing
