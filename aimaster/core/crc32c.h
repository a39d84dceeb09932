// CRC-32C (Castagnoli), the checksum of journal records.
#ifndef ELASTICBATCH_AIMASTER_CORE_CRC32C_H_
#define ELASTICBATCH_AIMASTER_CORE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace elasticbatch::aimaster {

// Extends `crc` (0 to start) over `n` bytes at `data`. Thread-safe.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);

}  // namespace elasticbatch::aimaster

#endif  // ELASTICBATCH_AIMASTER_CORE_CRC32C_H_
