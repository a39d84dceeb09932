// Helpers for the fuzz targets: FUZZ_CHECK aborts (a crash libFuzzer saves)
// with a message when an invariant does not hold, and FuzzInput hands out
// the input's bytes as small numbers and strings. Plain C++, so that the
// targets also build with g++ as corpus replay programs.
#ifndef ELASTICBATCH_FUZZ_FUZZ_CHECK_H_
#define ELASTICBATCH_FUZZ_FUZZ_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, ...)                                                     \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n  ", __FILE__, __LINE__, \
                   #cond);                                                        \
      std::fprintf(stderr, __VA_ARGS__);                                          \
      std::fprintf(stderr, "\n");                                                 \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

namespace elasticbatch::fuzz {

// Reads the fuzzer's bytes front to back; past the end every value is 0 and
// every string empty.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | Byte();
    return v;
  }
  // A value in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) {
    if (hi <= lo) return lo;
    const uint64_t span = hi - lo + 1;
    uint64_t v = span <= 256 ? Byte() : U32();
    return lo + v % span;
  }
  bool Bool() { return Byte() & 1; }
  // Up to `max` bytes, ended early by a 0xff byte (not included).
  std::string String(size_t max) {
    std::string out;
    while (pos_ < size_ && out.size() < max) {
      const char c = static_cast<char>(data_[pos_++]);
      if (static_cast<uint8_t>(c) == 0xff) break;
      out.push_back(c);
    }
    return out;
  }
  std::string_view Rest() {
    std::string_view rest(reinterpret_cast<const char*>(data_) + pos_,
                          pos_ < size_ ? size_ - pos_ : 0);
    pos_ = size_;
    return rest;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace elasticbatch::fuzz

#endif  // ELASTICBATCH_FUZZ_FUZZ_CHECK_H_
