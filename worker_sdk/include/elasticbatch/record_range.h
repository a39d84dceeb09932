// RecordRange: the record indexes of one RECORDS shard, [begin, end).
//
//   for (uint64_t row : RecordRange(shard.begin(), shard.end())) Score(table, row);
#ifndef ELASTICBATCH_RECORD_RANGE_H_
#define ELASTICBATCH_RECORD_RANGE_H_

#include <cstdint>
#include <iterator>

namespace elasticbatch {

class RecordRange {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = uint64_t;
    using difference_type = int64_t;
    using pointer = const uint64_t*;
    using reference = uint64_t;
    explicit Iterator(uint64_t at) : at_(at) {}
    uint64_t operator*() const { return at_; }
    Iterator& operator++() {
      ++at_;
      return *this;
    }
    Iterator operator++(int) { return Iterator(at_++); }
    bool operator==(const Iterator& o) const { return at_ == o.at_; }
    bool operator!=(const Iterator& o) const { return at_ != o.at_; }

   private:
    uint64_t at_;
  };

  RecordRange(uint64_t begin, uint64_t end)
      : begin_(begin), end_(end < begin ? begin : end) {}
  Iterator begin() const { return Iterator(begin_); }
  Iterator end() const { return Iterator(end_); }
  uint64_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  uint64_t first() const { return begin_; }
  uint64_t last_exclusive() const { return end_; }

 private:
  uint64_t begin_;
  uint64_t end_;
};

}  // namespace elasticbatch

#endif  // ELASTICBATCH_RECORD_RANGE_H_
