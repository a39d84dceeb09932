// Unguessable identifiers from the kernel's CSPRNG (getrandom(2)): session
// ids, job instance ids. Thread-safe.
#ifndef ELASTICBATCH_AIMASTER_CORE_RANDOM_ID_H_
#define ELASTICBATCH_AIMASTER_CORE_RANDOM_ID_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace elasticbatch::aimaster {

// 64 random bits, never 0.
uint64_t RandomId64();
// `bytes` random bytes as 2*bytes lowercase hex characters.
std::string RandomHex(size_t bytes);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_RANDOM_ID_H_
