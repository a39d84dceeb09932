#include "aimaster/launch/kubernetes/kube_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace elasticbatch::kube {
namespace {

// Credentials and CA bundles are a few KiB; a kubeconfig with many clusters
// a few hundred. Anything far bigger is not one of them.
constexpr std::streamsize kMaxFileBytes = 4 * 1024 * 1024;

// Reads a whole file; the error is the reason only (the caller names the
// field).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  struct stat st = {};
  if (stat(path.c_str(), &st) != 0)
    return absl::InvalidArgumentError(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError("not a regular file");
  if (st.st_size > kMaxFileBytes) return absl::InvalidArgumentError("file too large");
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError("read error");
  return out.str();
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return absl::StrCat(base_dir, "/", path);
}

// A PEM file or text must hold at least one PEM block; catching a DER file or
// a base64 blob pasted without decoding here gives a better message than
// curl's handshake error later.
bool LooksLikePem(const std::string& text) {
  return absl::StrContains(text, "-----BEGIN ");
}

absl::Status CheckServer(const std::string& server, const std::string& where) {
  if (!absl::StartsWith(server, "https://") && !absl::StartsWith(server, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"", server, "\" is not an http:// or https:// URL"));
  }
  return absl::OkStatus();
}

// Checks a PEM file the configuration names (for a field `field`).
absl::Status CheckPemFile(const std::string& path, const std::string& where,
                          const std::string& field) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", field, ": cannot read ",
                                                   path, ": ", text.status().message()));
  }
  if (!LooksLikePem(*text)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", field, ": ", path, " holds no PEM block"));
  }
  return absl::OkStatus();
}

// Decodes a *-data field (base64 of PEM).
absl::StatusOr<std::string> DecodePemData(const std::string& data,
                                          const std::string& where,
                                          const std::string& field) {
  std::string pem;
  std::string compact = data;
  compact.erase(std::remove_if(compact.begin(), compact.end(),
                               [](unsigned char c) { return absl::ascii_isspace(c); }),
                compact.end());
  if (!absl::Base64Unescape(compact, &pem)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", field, ": not valid base64"));
  }
  if (!LooksLikePem(pem)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", field, ": does not decode to PEM"));
  }
  return pem;
}

// yaml-cpp throws on type errors; these read a field or say which is wrong.
class YamlReader {
 public:
  explicit YamlReader(std::string where) : where_(std::move(where)) {}

  // A string field, empty when absent.
  absl::StatusOr<std::string> String(const YAML::Node& node, const std::string& key,
                                     const std::string& field) const {
    const YAML::Node value = node[key];
    if (!value || value.IsNull()) return std::string();
    if (!value.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where_, ": ", field, ": not a string"));
    }
    return value.Scalar();
  }

  // The entry of `list` (clusters, users, contexts) whose name is `name`,
  // with its index for messages.
  absl::StatusOr<std::pair<YAML::Node, size_t>> Named(const YAML::Node& root,
                                                      const std::string& list,
                                                      const std::string& name,
                                                      const std::string& referrer) const {
    const YAML::Node items = root[list];
    if (items && !items.IsNull() && !items.IsSequence()) {
      return absl::InvalidArgumentError(absl::StrCat(where_, ": ", list, ": not a list"));
    }
    if (items) {
      for (size_t i = 0; i < items.size(); ++i) {
        const YAML::Node item = items[i];
        if (!item.IsMap()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where_, ": ", list, "[", i, "]: not a mapping"));
        }
        const YAML::Node item_name = item["name"];
        if (item_name && item_name.IsScalar() && item_name.Scalar() == name) {
          return std::make_pair(item, i);
        }
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        where_, ": ", referrer, ": no entry named \"", name, "\" in ", list));
  }

  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

absl::StatusOr<KubeConfig> ParseKubeconfig(const std::string& path,
                                           const std::string& text,
                                           const std::string& context_override) {
  const std::string where = absl::StrCat("kubeconfig ", path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // e.what() carries the line and column; keep it on one line.
    std::string reason = e.what();
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    return absl::InvalidArgumentError(absl::StrCat(where, ": not valid YAML: ", reason));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not a kubeconfig (no mapping)"));
  }
  const YamlReader yaml(where);
  const std::string dir = Dirname(path);

  std::string context_name = context_override;
  if (context_name.empty()) {
    absl::StatusOr<std::string> current =
        yaml.String(root, "current-context", "current-context");
    if (!current.ok()) return current.status();
    context_name = *current;
  }
  if (context_name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": current-context: not set (and no context was given)"));
  }
  const std::string context_ref =
      context_override.empty() ? "current-context" : "context override";
  auto context = yaml.Named(root, "contexts", context_name, context_ref);
  if (!context.ok()) return context.status();
  const std::string context_field =
      absl::StrCat("contexts[", context->second, "].context");
  const YAML::Node context_body = context->first["context"];
  if (!context_body || !context_body.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", context_field, ": missing"));
  }

  KubeConfig config;
  config.source = absl::StrCat(where, " (context ", context_name, ")");
  // The reads below are of fields that are maps by now; type errors in
  // scalars are reported by YamlReader, so nothing here throws.
  absl::StatusOr<std::string> cluster_name =
      yaml.String(context_body, "cluster", context_field + ".cluster");
  if (!cluster_name.ok()) return cluster_name.status();
  absl::StatusOr<std::string> user_name =
      yaml.String(context_body, "user", context_field + ".user");
  if (!user_name.ok()) return user_name.status();
  absl::StatusOr<std::string> ns =
      yaml.String(context_body, "namespace", context_field + ".namespace");
  if (!ns.ok()) return ns.status();
  if (!ns->empty()) config.default_namespace = *ns;
  if (cluster_name->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", context_field, ".cluster: not set"));
  }

  // The cluster: server and trust.
  auto cluster = yaml.Named(root, "clusters", *cluster_name, context_field + ".cluster");
  if (!cluster.ok()) return cluster.status();
  const std::string cluster_field =
      absl::StrCat("clusters[", cluster->second, "].cluster");
  const YAML::Node cluster_body = cluster->first["cluster"];
  if (!cluster_body || !cluster_body.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", cluster_field, ": missing"));
  }
  absl::StatusOr<std::string> server =
      yaml.String(cluster_body, "server", cluster_field + ".server");
  if (!server.ok()) return server.status();
  if (server->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", cluster_field, ".server: not set"));
  }
  if (absl::Status s =
          CheckServer(*server, absl::StrCat(where, ": ", cluster_field, ".server"));
      !s.ok()) {
    return s;
  }
  config.server = std::string(absl::StripSuffix(*server, "/"));
  const YAML::Node skip = cluster_body["insecure-skip-tls-verify"];
  if (skip && skip.IsScalar() && absl::AsciiStrToLower(skip.Scalar()) == "true") {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", cluster_field,
        ".insecure-skip-tls-verify: not supported (give the cluster's CA instead)"));
  }
  absl::StatusOr<std::string> ca_file = yaml.String(
      cluster_body, "certificate-authority", cluster_field + ".certificate-authority");
  if (!ca_file.ok()) return ca_file.status();
  absl::StatusOr<std::string> ca_data =
      yaml.String(cluster_body, "certificate-authority-data",
                  cluster_field + ".certificate-authority-data");
  if (!ca_data.ok()) return ca_data.status();
  if (!ca_data->empty()) {
    absl::StatusOr<std::string> pem =
        DecodePemData(*ca_data, where, cluster_field + ".certificate-authority-data");
    if (!pem.ok()) return pem.status();
    config.ca_pem = *std::move(pem);
  } else if (!ca_file->empty()) {
    config.ca_file = Resolve(dir, *ca_file);
    if (absl::Status s =
            CheckPemFile(config.ca_file, where, cluster_field + ".certificate-authority");
        !s.ok()) {
      return s;
    }
  }

  // The user: credentials. A context without a user is anonymous access.
  if (user_name->empty()) return config;
  auto user = yaml.Named(root, "users", *user_name, context_field + ".user");
  if (!user.ok()) return user.status();
  const std::string user_field = absl::StrCat("users[", user->second, "].user");
  const YAML::Node user_body = user->first["user"];
  if (!user_body || user_body.IsNull()) return config;
  if (!user_body.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", user_field, ": not a mapping"));
  }
  for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
    if (user_body[unsupported]) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ", user_field, ".", unsupported,
          ": not supported (use a token, a tokenFile or a client certificate)"));
    }
  }
  absl::StatusOr<std::string> token =
      yaml.String(user_body, "token", user_field + ".token");
  if (!token.ok()) return token.status();
  config.token = std::string(absl::StripAsciiWhitespace(*token));
  absl::StatusOr<std::string> token_file =
      yaml.String(user_body, "tokenFile", user_field + ".tokenFile");
  if (!token_file.ok()) return token_file.status();
  if (config.token.empty() && !token_file->empty()) {
    config.token_file = Resolve(dir, *token_file);
    absl::StatusOr<std::string> content = ReadSmallFile(config.token_file);
    if (!content.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", user_field, ".tokenFile: cannot read ",
                       config.token_file, ": ", content.status().message()));
    }
  }

  // The client certificate and key, each from a file or data.
  struct PemField {
    const char* file_key;
    const char* data_key;
    std::string* file_out;
    std::string* pem_out;
  };
  for (const PemField& f : {PemField{"client-certificate", "client-certificate-data",
                                     &config.client_cert_file, &config.client_cert_pem},
                            PemField{"client-key", "client-key-data",
                                     &config.client_key_file, &config.client_key_pem}}) {
    const std::string file_field = absl::StrCat(user_field, ".", f.file_key);
    const std::string data_field = absl::StrCat(user_field, ".", f.data_key);
    absl::StatusOr<std::string> file = yaml.String(user_body, f.file_key, file_field);
    if (!file.ok()) return file.status();
    absl::StatusOr<std::string> data = yaml.String(user_body, f.data_key, data_field);
    if (!data.ok()) return data.status();
    if (!data->empty()) {
      absl::StatusOr<std::string> pem = DecodePemData(*data, where, data_field);
      if (!pem.ok()) return pem.status();
      *f.pem_out = *std::move(pem);
    } else if (!file->empty()) {
      *f.file_out = Resolve(dir, *file);
      if (absl::Status s = CheckPemFile(*f.file_out, where, file_field); !s.ok())
        return s;
    }
  }
  const bool have_cert =
      !config.client_cert_file.empty() || !config.client_cert_pem.empty();
  const bool have_key = !config.client_key_file.empty() || !config.client_key_pem.empty();
  if (have_cert != have_key) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", user_field, ": ",
                     have_cert ? "client-certificate without client-key"
                               : "client-key without client-certificate"));
  }
  return config;
}

}  // namespace

absl::StatusOr<KubeConfig> InClusterConfig(const std::string& root) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return absl::InvalidArgumentError(
        "in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
        "are "
        "not set (not running in a pod; give --kubeconfig or set $KUBECONFIG)");
  }
  KubeConfig config;
  config.source = absl::StrCat("in-cluster service account ", root);
  const std::string where = absl::StrCat("in-cluster configuration ", root);
  // An IPv6 service address needs brackets in a URL.
  const std::string host_part =
      absl::StrContains(host, ":") ? absl::StrCat("[", host, "]") : std::string(host);
  config.server = absl::StrCat("https://", host_part, ":", port);
  config.token_file = absl::StrCat(root, "/token");
  absl::StatusOr<std::string> token = ReadSmallFile(config.token_file);
  if (!token.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": token: cannot read ",
                                                   config.token_file, ": ",
                                                   token.status().message()));
  }
  config.ca_file = absl::StrCat(root, "/ca.crt");
  if (absl::Status s = CheckPemFile(config.ca_file, where, "ca.crt"); !s.ok()) return s;
  // The namespace file is always mounted with the token; without it the
  // pod's namespace is unknown and "default" is the best guess.
  absl::StatusOr<std::string> ns = ReadSmallFile(absl::StrCat(root, "/namespace"));
  if (ns.ok() && !absl::StripAsciiWhitespace(*ns).empty()) {
    config.default_namespace = std::string(absl::StripAsciiWhitespace(*ns));
  }
  return config;
}

absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path,
                                          const std::string& context_override) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", path, ": cannot read: ", text.status().message()));
  }
  // YamlReader checks every type before reading, so nothing should throw;
  // this catch keeps a yaml-cpp surprise from crossing the API all the same.
  try {
    return ParseKubeconfig(path, *text, context_override);
  } catch (const YAML::Exception& e) {
    std::string reason = e.what();
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": ", reason));
  }
}

absl::StatusOr<KubeConfig> ResolveKubeConfig(const std::string& flag_path,
                                             const std::string& context_override) {
  if (!flag_path.empty()) return LoadKubeconfig(flag_path, context_override);
  const char* env = std::getenv("KUBECONFIG");
  if (env != nullptr) {
    // kubectl merges every file of the list; the first is where contexts
    // and credentials normally live, and merging is not worth its surprises.
    for (absl::string_view part : absl::StrSplit(env, ':', absl::SkipEmpty())) {
      return LoadKubeconfig(std::string(part), context_override);
    }
  }
  return InClusterConfig();
}

}  // namespace elasticbatch::kube
