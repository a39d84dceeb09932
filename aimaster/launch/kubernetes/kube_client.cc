#include "aimaster/launch/kubernetes/kube_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace elasticbatch::kube {

using nlohmann::json;

namespace {

constexpr char kHttpStatusPayload[] = "type.googleapis.com/elasticbatch.kube.HttpStatus";
// How much of a server's message goes into an error: enough for any Status
// message, short enough to keep a log line a line.
constexpr size_t kMaxMessageChars = 1000;

absl::once_flag curl_init_once;

std::string OneLine(absl::string_view text) {
  std::string out(text.substr(0, kMaxMessageChars));
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (text.size() > kMaxMessageChars) out += "...";
  return std::string(absl::StripAsciiWhitespace(out));
}

// Percent-encodes a query value (RFC 3986 unreserved characters pass).
std::string QueryEscape(absl::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

absl::Status WithHttpStatus(absl::Status status, long http_status) {
  status.SetPayload(kHttpStatusPayload, absl::Cord(absl::StrCat(http_status)));
  return status;
}

// `status` with `suffix` added to its message, payloads kept.
absl::Status Annotate(const absl::Status& status, absl::string_view suffix) {
  absl::Status out(status.code(), absl::StrCat(status.message(), suffix));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

absl::StatusCode CodeForHttp(long http_status, absl::string_view reason) {
  switch (http_status) {
    case 400:
    case 415:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists
                                       : absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kAborted;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return http_status >= 500 ? absl::StatusCode::kUnavailable
                                : absl::StatusCode::kUnknown;
  }
}

absl::string_view HttpStatusText(long http_status) {
  switch (http_status) {
    case 400:
      return "bad request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not found";
    case 409:
      return "conflict";
    case 410:
      return "gone";
    case 415:
      return "unsupported media type";
    case 422:
      return "invalid";
    case 429:
      return "too many requests";
    case 500:
      return "internal server error";
    case 503:
      return "service unavailable";
    case 504:
      return "gateway timeout";
    default:
      return "error";
  }
}

// Reads a Status object's message and reason; both empty when `body` is not
// one (a proxy's HTML page, say: then its start is the message).
void ParseStatusBody(absl::string_view body, std::string* message, std::string* reason) {
  const json status = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_object()) {
    const auto m = status.find("message");
    if (m != status.end() && m->is_string()) *message = m->get<std::string>();
    const auto r = status.find("reason");
    if (r != status.end() && r->is_string()) *reason = r->get<std::string>();
    return;
  }
  *message = std::string(body.substr(0, 200));
}

std::string ResourceName(const ResourceKind& kind) {
  return kind.group.empty() ? kind.plural : absl::StrCat(kind.plural, ".", kind.group);
}

// "pods "w-1" in namespace "ns"" / "pods in namespace "ns"".
std::string Target(const ResourceKind& kind, const std::string& ns,
                   const std::string& name) {
  std::string out = ResourceName(kind);
  if (!name.empty()) absl::StrAppend(&out, " \"", name, "\"");
  absl::StrAppend(&out, " in namespace \"", ns, "\"");
  return out;
}

std::string RbacRule(const std::string& verb, const ResourceKind& kind) {
  std::string out =
      absl::StrCat("the Role needs verbs [", verb, "] on resource \"", kind.plural, "\"");
  if (!kind.group.empty()) absl::StrAppend(&out, " in apiGroup \"", kind.group, "\"");
  return out;
}

std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string ResourceVersionOf(const json& object) {
  if (!object.is_object()) return "";
  const auto meta = object.find("metadata");
  return meta == object.end() ? "" : StringField(*meta, "resourceVersion");
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read the API token file ",
                                                      path, ": ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(out.str()));
}

struct CurlHeaders {
  curl_slist* list = nullptr;
  ~CurlHeaders() { curl_slist_free_all(list); }
  void Add(const std::string& header) { list = curl_slist_append(list, header.c_str()); }
};

size_t DiscardOrCollectHeader(char* data, size_t size, size_t n, void* user);
int CancelProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const Cancellation*>(user);
  return cancel != nullptr && cancel->cancelled() ? 1 : 0;
}

}  // namespace

std::string CollectionPath(const ResourceKind& kind, const std::string& ns) {
  if (kind.group.empty())
    return absl::StrCat("/api/", kind.version, "/namespaces/", ns, "/", kind.plural);
  return absl::StrCat("/apis/", kind.group, "/", kind.version, "/namespaces/", ns, "/",
                      kind.plural);
}

std::optional<int> HttpStatusOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kHttpStatusPayload);
  int code = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

struct KubeClient::Request {
  std::string method;  // GET, POST, PATCH, DELETE
  std::string verb;    // the RBAC verb: get, list, create, patch, delete
  const ResourceKind* kind = nullptr;
  std::string ns;
  std::string name;
  std::string path;  // path and query
  std::string body;
  std::string content_type;
  // False for a create: retried only when the server cannot have acted.
  bool idempotent = true;
  // The answer is text (a log), returned as a JSON string.
  bool raw = false;
  const Cancellation* cancel = nullptr;
};

struct KubeClient::Response {
  CURLcode curl_code = CURLE_OK;
  std::string curl_error;
  long http_status = 0;
  std::string body;
  std::optional<absl::Duration> retry_after;
  bool too_large = false;
  size_t max_bytes = 0;
};

namespace {

size_t CollectBody(char* data, size_t size, size_t n, void* user) {
  auto* response = static_cast<std::string*>(user);
  response->append(data, size * n);
  return size * n;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeClient>> KubeClient::Create(
    KubeConfig config, KubeClientOptions options) {
  if (!absl::StartsWith(config.server, "https://") &&
      !absl::StartsWith(config.server, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.source, ": server \"", config.server,
                     "\" is not an http:// or https:// URL"));
  }
  while (absl::EndsWith(config.server, "/")) config.server.pop_back();
  if (options.max_attempts < 1) options.max_attempts = 1;
  bool curl_ok = true;
  absl::call_once(curl_init_once,
                  [&] { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; });
  if (!curl_ok) return absl::InternalError("libcurl failed to initialize");
  return std::unique_ptr<KubeClient>(
      new KubeClient(std::move(config), std::move(options)));
}

KubeClient::KubeClient(KubeConfig config, KubeClientOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  jitter_state_ = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) ^
                  reinterpret_cast<uintptr_t>(this);
}

KubeClient::~KubeClient() {
  absl::MutexLock lock(&mu_);
  for (void* handle : idle_handles_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

void* KubeClient::TakeHandle() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_handles_.empty()) {
      void* handle = idle_handles_.back();
      idle_handles_.pop_back();
      return handle;
    }
  }
  return curl_easy_init();
}

void KubeClient::ReturnHandle(void* handle) {
  // Reset clears the options but keeps the connection cache.
  curl_easy_reset(static_cast<CURL*>(handle));
  absl::MutexLock lock(&mu_);
  // A few idle handles cover the master's concurrency; more would only hold
  // connections open.
  if (idle_handles_.size() < 8) {
    idle_handles_.push_back(handle);
    return;
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

absl::Duration KubeClient::Backoff(int retry) {
  absl::Duration ceiling = options_.initial_backoff;
  for (int i = 0; i < retry && ceiling < options_.max_backoff; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, options_.max_backoff);
  uint64_t r;
  {
    absl::MutexLock lock(&mu_);
    // splitmix64: jitter needs spread, not secrecy.
    uint64_t z = (jitter_state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    r = z ^ (z >> 31);
  }
  const double fraction =
      0.5 + 0.5 * static_cast<double>(r >> 11) / static_cast<double>(1ULL << 53);
  return ceiling * fraction;
}

absl::StatusOr<std::string> KubeClient::BearerToken() const {
  if (!config_.token.empty()) return config_.token;
  if (config_.token_file.empty()) return std::string();
  return ReadToken(config_.token_file);
}

namespace {

size_t DiscardOrCollectHeader(char* data, size_t size, size_t n, void* user) {
  auto* retry_after = static_cast<std::optional<absl::Duration>*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) retry_after->reset();  // a new response
  // Header names are case-insensitive (and lower case over HTTP/2).
  if (line.size() > 12 && absl::EqualsIgnoreCase(line.substr(0, 12), "retry-after:")) {
    line.remove_prefix(12);
    int seconds = 0;
    // The API server sends seconds; an HTTP date is not worth parsing.
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &seconds) && seconds >= 0) {
      *retry_after = absl::Seconds(seconds);
    }
  }
  return size * n;
}

// The options every request shares: URL, trust, credentials, timeouts.
void SetCommonOptions(CURL* h, const KubeConfig& config, const KubeClientOptions& options,
                      const std::string& url, const std::string& token,
                      CurlHeaders* headers, char* error_buffer) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.connect_timeout)));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  // curl copies blobs (CURL_BLOB_COPY), so these may be locals.
  curl_blob blob = {};
  if (!config.ca_pem.empty()) {
    blob = {const_cast<char*>(config.ca_pem.data()), config.ca_pem.size(),
            CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
  } else if (!config.ca_file.empty()) {
    curl_easy_setopt(h, CURLOPT_CAINFO, config.ca_file.c_str());
  }
  if (!config.client_cert_pem.empty()) {
    blob = {const_cast<char*>(config.client_cert_pem.data()),
            config.client_cert_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
  } else if (!config.client_cert_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, config.client_cert_file.c_str());
  }
  if (!config.client_key_pem.empty()) {
    blob = {const_cast<char*>(config.client_key_pem.data()), config.client_key_pem.size(),
            CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  } else if (!config.client_key_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLKEY, config.client_key_file.c_str());
  }
  headers->Add("Accept: application/json");
  // No "Expect: 100-continue" round trip for bodies.
  headers->Add("Expect:");
  if (!token.empty()) headers->Add(absl::StrCat("Authorization: Bearer ", token));
}

bool IsTlsError(CURLcode code) {
  return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CONNECT_ERROR ||
         code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_CACERT_BADFILE ||
         code == CURLE_SSL_CIPHER || code == CURLE_SSL_ENGINE_NOTFOUND;
}

// Errors curl reports before the request can have reached the server.
bool NothingSent(CURLcode code) {
  return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST;
}

bool RetryableTransport(CURLcode code) {
  return NothingSent(code) || code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR ||
         code == CURLE_GOT_NOTHING || code == CURLE_PARTIAL_FILE ||
         code == CURLE_OPERATION_TIMEDOUT;
}

}  // namespace

KubeClient::Response KubeClient::Perform(const Request& request, const std::string& token,
                                         absl::Duration timeout) {
  Response response;
  CURL* h = static_cast<CURL*>(TakeHandle());
  if (h == nullptr) {
    response.curl_code = CURLE_OUT_OF_MEMORY;
    response.curl_error = "curl_easy_init failed";
    return response;
  }
  char error_buffer[CURL_ERROR_SIZE] = {};
  CurlHeaders headers;
  SetCommonOptions(h, config_, options_, config_.server + request.path, token, &headers,
                   error_buffer);
  if (!request.content_type.empty()) {
    headers.Add(absl::StrCat("Content-Type: ", request.content_type));
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(
      h, CURLOPT_TIMEOUT_MS,
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout))));
  if (request.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (!request.body.empty() || request.method == "POST") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.c_str());
    }
  }
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &DiscardOrCollectHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &response.retry_after);
  struct Sink {
    std::string* body;
    size_t max;
    bool* too_large;
  } sink{&response.body, options_.max_response_bytes, &response.too_large};
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION,
      +[](char* data, size_t size, size_t n, void* user) -> size_t {
        auto* s = static_cast<Sink*>(user);
        if (s->body->size() + size * n > s->max) {
          *s->too_large = true;
          return 0;
        }
        return CollectBody(data, size, n, s->body);
      });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  if (request.cancel != nullptr) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &CancelProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, request.cancel);
  }
  response.curl_code = curl_easy_perform(h);
  response.curl_error = error_buffer[0] != '\0' ? std::string(error_buffer)
                                                : curl_easy_strerror(response.curl_code);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.http_status);
  ReturnHandle(h);
  return response;
}

absl::StatusOr<json> KubeClient::Call(const Request& request) {
  const auto now = [&] { return options_.now ? options_.now() : absl::Now(); };
  const absl::Time deadline = now() + options_.call_deadline;
  const std::string what =
      absl::StrCat(request.verb, " ", Target(*request.kind, request.ns, request.name));
  absl::Status error;
  for (int attempt = 1;; ++attempt) {
    if (request.cancel != nullptr && request.cancel->cancelled()) {
      return absl::CancelledError(absl::StrCat(what, ": cancelled"));
    }
    const absl::Duration remaining = deadline - now();
    if (remaining <= absl::ZeroDuration()) {
      return error.ok() ? absl::DeadlineExceededError(
                              absl::StrCat(what, ": call deadline passed"))
                        : error;
    }
    // Read for every attempt: a projected token file is rotated in place.
    const absl::StatusOr<std::string> token = BearerToken();
    if (!token.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": ", token.status().message()));
    }
    Response response =
        Perform(request, *token, std::min(options_.request_timeout, remaining));
    bool retryable = false;
    if (response.curl_code == CURLE_OK) {
      if (response.http_status >= 200 && response.http_status < 300) {
        if (request.raw) return json(std::move(response.body));
        json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
        if (body.is_discarded()) {
          return absl::UnavailableError(
              absl::StrCat(what, ": the API server's answer is not JSON"));
        }
        return body;
      }
      std::string message, reason;
      ParseStatusBody(response.body, &message, &reason);
      const long code = response.http_status;
      std::string text;
      if (code == 403) {
        text =
            absl::StrCat("forbidden: cannot ", request.verb, " ",
                         Target(*request.kind, request.ns, request.name), " (",
                         RbacRule(request.verb, *request.kind), "): ", OneLine(message));
      } else if (code == 401) {
        text = absl::StrCat(what,
                            ": unauthorized: the API server refused the credentials of ",
                            config_.source, ": ", OneLine(message));
      } else {
        text = absl::StrCat(what, ": ", HttpStatusText(code), " (HTTP ", code,
                            "): ", OneLine(message));
      }
      error = WithHttpStatus(absl::Status(CodeForHttp(code, reason), text), code);
      // 429 means not processed; a 5xx may have been, which only matters
      // for a create.
      retryable = code == 429 || (code >= 500 && request.idempotent);
    } else if (response.too_large) {
      return absl::ResourceExhaustedError(absl::StrCat(
          what, ": answer larger than ", options_.max_response_bytes, " bytes"));
    } else if (response.curl_code == CURLE_ABORTED_BY_CALLBACK) {
      return absl::CancelledError(absl::StrCat(what, ": cancelled"));
    } else if (IsTlsError(response.curl_code)) {
      // A certificate that does not verify will not start verifying.
      return absl::UnavailableError(
          absl::StrCat(what, ": TLS with ", config_.server,
                       " failed: ", OneLine(response.curl_error)));
    } else {
      const absl::StatusCode code = response.curl_code == CURLE_OPERATION_TIMEDOUT
                                        ? absl::StatusCode::kDeadlineExceeded
                                        : absl::StatusCode::kUnavailable;
      error = absl::Status(
          code, absl::StrCat(what, ": cannot reach the API server ", config_.server, ": ",
                             OneLine(response.curl_error)));
      retryable = RetryableTransport(response.curl_code) &&
                  (request.idempotent || NothingSent(response.curl_code));
    }
    if (!retryable) return error;
    if (attempt >= options_.max_attempts) {
      return Annotate(error, absl::StrCat(" (gave up after ", attempt, " attempts)"));
    }
    absl::Duration wait = response.retry_after
                              ? std::min(*response.retry_after, options_.max_retry_after)
                              : Backoff(attempt - 1);
    if (now() + wait > deadline) {
      return Annotate(
          error, absl::StrCat(" (call deadline reached after ", attempt, " attempts)"));
    }
    if (options_.sleep) {
      options_.sleep(wait);
    } else if (request.cancel != nullptr) {
      request.cancel->WaitFor(wait);
    } else {
      absl::SleepFor(wait);
    }
  }
}

KubeClient::Request KubeClient::MakeRequest(const char* method, const char* verb,
                                            const ResourceKind& kind,
                                            const std::string& ns,
                                            const std::string& name) {
  KubeClient::Request request;
  request.method = method;
  request.verb = verb;
  request.kind = &kind;
  request.ns = ns;
  request.name = name;
  request.path = name.empty() ? CollectionPath(kind, ns)
                              : absl::StrCat(CollectionPath(kind, ns), "/", name);
  return request;
}

absl::StatusOr<json> KubeClient::Get(const ResourceKind& kind, const std::string& ns,
                                     const std::string& name) {
  return Call(MakeRequest("GET", "get", kind, ns, name));
}

absl::StatusOr<KubeList> KubeClient::List(const ResourceKind& kind, const std::string& ns,
                                          const ListOptions& options) {
  Request request = MakeRequest("GET", "list", kind, ns, "");
  if (!options.label_selector.empty()) {
    absl::StrAppend(&request.path,
                    "?labelSelector=", QueryEscape(options.label_selector));
  }
  request.cancel = options.cancel;
  absl::StatusOr<json> body = Call(request);
  if (!body.ok()) return body.status();
  KubeList list;
  const auto items = body->find("items");
  if (items != body->end() && items->is_array()) {
    list.items.assign(items->begin(), items->end());
  } else if (items != body->end() && !items->is_null()) {
    return absl::UnavailableError(
        absl::StrCat("list ", Target(kind, ns, ""), ": items is not a list"));
  }
  list.resource_version = ResourceVersionOf(*body);
  return list;
}

absl::StatusOr<json> KubeClient::Create(const ResourceKind& kind, const std::string& ns,
                                        const json& object) {
  Request request = MakeRequest("POST", "create", kind, ns, "");
  // Named in errors; the path stays the collection's.
  if (object.is_object() && object.contains("metadata")) {
    request.name = StringField(object["metadata"], "name");
  }
  request.body = object.dump();
  request.content_type = "application/json";
  request.idempotent = false;
  return Call(request);
}

absl::StatusOr<json> KubeClient::MergePatch(const ResourceKind& kind,
                                            const std::string& ns,
                                            const std::string& name, const json& patch) {
  Request request = MakeRequest("PATCH", "patch", kind, ns, name);
  request.body = patch.dump();
  request.content_type = "application/merge-patch+json";
  return Call(request);
}

absl::Status KubeClient::Delete(const ResourceKind& kind, const std::string& ns,
                                const std::string& name, const DeleteOptions& options) {
  Request request = MakeRequest("DELETE", "delete", kind, ns, name);
  json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!options.uid.empty()) body["preconditions"]["uid"] = options.uid;
  if (!options.resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = options.resource_version;
  }
  if (!options.propagation_policy.empty()) {
    body["propagationPolicy"] = options.propagation_policy;
  }
  if (options.grace_period_seconds) {
    body["gracePeriodSeconds"] = *options.grace_period_seconds;
  }
  request.body = body.dump();
  request.content_type = "application/json";
  return Call(request).status();
}

absl::StatusOr<std::string> KubeClient::PodLog(const std::string& ns,
                                               const std::string& name,
                                               const std::string& container,
                                               int64_t tail_lines, int64_t limit_bytes) {
  Request request = MakeRequest("GET", "get", kPodLogs, ns, name);
  request.path = absl::StrCat(CollectionPath(kPods, ns), "/", name,
                              "/log?container=", QueryEscape(container),
                              "&tailLines=", tail_lines, "&limitBytes=", limit_bytes);
  request.raw = true;
  absl::StatusOr<json> text = Call(request);
  if (!text.ok()) return text.status();
  return text->get<std::string>();
}

namespace {

// The state of one watch, shared with curl's callbacks.
struct WatchStream {
  CURL* handle = nullptr;
  const KubeClient::EventHandler* on_event = nullptr;
  std::string what;
  size_t max_line = 0;
  long http_status = 0;
  std::string pending;     // an event not yet ended by a newline
  std::string error_body;  // a non-200 answer
  absl::Status event_error;
  bool stopped = false;

  size_t Write(const char* data, size_t n) {
    if (http_status == 0) curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &http_status);
    if (http_status != 200) {
      if (error_body.size() < 64 * 1024) error_body.append(data, n);
      return n;
    }
    pending.append(data, n);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      const absl::string_view line = absl::StripAsciiWhitespace(
          absl::string_view(pending).substr(start, nl - start));
      if (line.empty()) continue;
      if (!Deliver(line)) return 0;
    }
    pending.erase(0, start);
    if (pending.size() > max_line) {
      event_error = absl::ResourceExhaustedError(
          absl::StrCat(what, ": a watch event larger than ", max_line, " bytes"));
      return 0;
    }
    return n;
  }

  // False ends the stream.
  bool Deliver(absl::string_view line) {
    json event = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!event.is_object() || !event.contains("type") || !event["type"].is_string()) {
      event_error = absl::UnavailableError(
          absl::StrCat(what, ": malformed watch event: ", OneLine(line.substr(0, 200))));
      return false;
    }
    WatchEvent out;
    out.type = event["type"].get<std::string>();
    if (event.contains("object")) out.object = std::move(event["object"]);
    if (out.type == "ERROR") {
      // The object is a Status; 410 = the version is too old to resume from.
      long code = 0;
      const auto c = out.object.is_object() ? out.object.find("code") : out.object.end();
      if (out.object.is_object() && c != out.object.end() && c->is_number_integer()) {
        code = c->get<long>();
      }
      const std::string message = StringField(out.object, "message");
      const std::string reason = StringField(out.object, "reason");
      event_error = WithHttpStatus(
          absl::Status(
              code == 0 ? absl::StatusCode::kUnavailable : CodeForHttp(code, reason),
              absl::StrCat(what, ": watch error ", code, code == 410 ? " (gone)" : "",
                           ": ", OneLine(message))),
          code);
      return false;
    }
    if ((*on_event)(out)) return true;
    stopped = true;
    return false;
  }
};

}  // namespace

absl::Status KubeClient::Watch(const ResourceKind& kind, const std::string& ns,
                               const WatchOptions& options,
                               const EventHandler& on_event) {
  const std::string what = absl::StrCat("watch ", Target(kind, ns, ""));
  absl::StatusOr<std::string> token = BearerToken();
  if (!token.ok())
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", token.status().message()));
  const int64_t timeout_seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(options.timeout));
  std::string path =
      absl::StrCat(CollectionPath(kind, ns), "?watch=1&timeoutSeconds=", timeout_seconds);
  if (!options.resource_version.empty()) {
    absl::StrAppend(&path, "&resourceVersion=", QueryEscape(options.resource_version));
  }
  if (options.allow_bookmarks) absl::StrAppend(&path, "&allowWatchBookmarks=true");
  if (!options.label_selector.empty()) {
    absl::StrAppend(&path, "&labelSelector=", QueryEscape(options.label_selector));
  }

  CURL* h = static_cast<CURL*>(TakeHandle());
  if (h == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
  char error_buffer[CURL_ERROR_SIZE] = {};
  CurlHeaders headers;
  SetCommonOptions(h, config_, options_, config_.server + path, *token, &headers,
                   error_buffer);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);
  // The server ends the watch after timeoutSeconds; the slack covers a slow
  // server, and the low-speed limit catches a connection that died quietly.
  curl_easy_setopt(
      h, CURLOPT_TIMEOUT_MS,
      static_cast<long>(timeout_seconds * 1000 +
                        absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(std::max<int64_t>(
                       1, absl::ToInt64Seconds(options_.watch_idle_timeout))));
  WatchStream stream;
  stream.handle = h;
  stream.on_event = &on_event;
  stream.what = what;
  stream.max_line = options_.max_response_bytes;
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION,
      +[](char* data, size_t size, size_t n, void* user) -> size_t {
        return static_cast<WatchStream*>(user)->Write(data, size * n);
      });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &stream);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &CancelProgress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, options.cancel);
  const CURLcode result = curl_easy_perform(h);
  const std::string curl_error =
      error_buffer[0] != '\0' ? std::string(error_buffer) : curl_easy_strerror(result);
  long http_status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
  if (result == CURLE_OK) {
    ReturnHandle(h);
  } else {
    // A connection abandoned in the middle of a stream is of no use again.
    curl_easy_cleanup(h);
  }

  if (stream.stopped) return absl::OkStatus();
  if (options.cancel != nullptr && options.cancel->cancelled()) return absl::OkStatus();
  if (!stream.event_error.ok()) return stream.event_error;
  if (result == CURLE_OK && http_status != 200) {
    std::string message, reason;
    ParseStatusBody(stream.error_body, &message, &reason);
    std::string text =
        http_status == 403
            ? absl::StrCat("forbidden: cannot watch ", Target(kind, ns, ""), " (",
                           RbacRule("watch", kind), "): ", OneLine(message))
            : absl::StrCat(what, ": ", HttpStatusText(http_status), " (HTTP ",
                           http_status, "): ", OneLine(message));
    return WithHttpStatus(absl::Status(CodeForHttp(http_status, reason), text),
                          http_status);
  }
  if (result == CURLE_OPERATION_TIMEDOUT) {
    return absl::UnavailableError(
        absl::StrCat(what, ": nothing heard from the API server ", config_.server, ": ",
                     OneLine(curl_error)));
  }
  if (result != CURLE_OK) {
    if (IsTlsError(result)) {
      return absl::UnavailableError(absl::StrCat(what, ": TLS with ", config_.server,
                                                 " failed: ", OneLine(curl_error)));
    }
    return absl::UnavailableError(absl::StrCat(what, ": the watch on ", config_.server,
                                               " broke: ", OneLine(curl_error)));
  }
  return absl::OkStatus();
}

}  // namespace elasticbatch::kube
