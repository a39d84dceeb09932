// Where the Kubernetes API server is and how to authenticate to it: from a
// kubeconfig file (`--kubeconfig`, `$KUBECONFIG`) or from the service account
// a pod runs as (in-cluster).
//
//   absl::StatusOr<KubeConfig> config = ResolveKubeConfig(flags.kubeconfig);
//   if (!config.ok()) return Usage(config.status());  // one line, names the file
//   auto client = KubeClient::Create(*config);
//
// Every bad input is one line of INVALID_ARGUMENT that names the file and the
// field (`kubeconfig /k/config: users[0].user.client-key-data: not valid
// base64`), so a CLI can print it and exit 2. Files a configuration names (CA,
// client certificate and key) are checked when it is loaded; the token file is
// only checked for being readable, because it is read again on every request
// (projected service-account tokens are rotated in place).
//
// Not supported, and refused by name rather than ignored: insecure-skip-tls-verify,
// exec and auth-provider credential plugins, username/password.
#ifndef ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBE_CONFIG_H_
#define ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBE_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"

namespace elasticbatch::kube {

// Where a pod finds its service account's credentials.
inline constexpr char kServiceAccountDir[] =
    "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  // "https://10.96.0.1:443"; "http://127.0.0.1:8080" is allowed (tests, a
  // local proxy). No trailing slash.
  std::string server = "";
  // Trust for an https server: a PEM file, or PEM text. Neither: the system's
  // trust store. A server certificate is always verified.
  std::string ca_file = "";
  std::string ca_pem = "";
  // A bearer token, or a file holding one (read on every request). The token
  // wins when both are set, as with kubectl.
  std::string token = "";
  std::string token_file = "";
  // A client certificate and its key, each as a PEM file or PEM text.
  std::string client_cert_file = "";
  std::string client_cert_pem = "";
  std::string client_key_file = "";
  std::string client_key_pem = "";
  // The namespace to work in when the caller names none. Default: "default".
  std::string default_namespace = "default";
  // Where this came from, for messages: "kubeconfig /k/config (context
  // prod)" or "in-cluster service account".
  std::string source = "";
};

// The pod's own service account: `root`/token (as token_file), `root`/ca.crt,
// `root`/namespace, and the server from $KUBERNETES_SERVICE_HOST and
// $KUBERNETES_SERVICE_PORT. INVALID_ARGUMENT when the variables are not set
// (not in a pod) or a file is missing or unusable.
absl::StatusOr<KubeConfig> InClusterConfig(const std::string& root = kServiceAccountDir);

// Parses the kubeconfig at `path` and takes the context `context_override`
// (empty: the file's current-context). Relative file names in it are
// relative to the kubeconfig's directory.
absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path,
                                          const std::string& context_override = "");

// The configuration a command should use: the kubeconfig `flag_path` when
// set, else the first file of $KUBECONFIG (colon-separated), else in-cluster.
absl::StatusOr<KubeConfig> ResolveKubeConfig(const std::string& flag_path,
                                             const std::string& context_override = "");

}  // namespace elasticbatch::kube

#endif  // ELASTICBATCH_AIMASTER_LAUNCH_KUBERNETES_KUBE_CONFIG_H_
