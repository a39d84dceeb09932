// The one place absl::Status becomes grpc::Status.
#ifndef ELASTICBATCH_AIMASTER_SERVICE_STATUS_CONVERSION_H_
#define ELASTICBATCH_AIMASTER_SERVICE_STATUS_CONVERSION_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace elasticbatch::aimaster {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_SERVICE_STATUS_CONVERSION_H_
