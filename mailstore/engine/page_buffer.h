// An in-memory page image. Cached pages are immutable once installed and are
// shared by pointer; a transaction changes a private copy and installs it
// whole at commit, so readers never see a half-changed page.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace dagvault::mailstore {

class PageBuffer {
 public:
  explicit PageBuffer(uint32_t size)
      : size_(size), data_(static_cast<uint8_t*>(std::aligned_alloc(4096, size))) {
    std::memset(data_, 0, size);
  }
  ~PageBuffer() { std::free(data_); }
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  uint32_t size() const { return size_; }

  // The lazy-writer epoch in which this version of the page was logged as a
  // whole image (0: never since it was read). The first change of a page in
  // a new epoch is logged as an image, so a page torn on disk can always be
  // rebuilt from the log after the checkpoint.
  uint64_t image_epoch = 0;

  std::shared_ptr<PageBuffer> Clone() const {
    auto copy = std::make_shared<PageBuffer>(size_);
    std::memcpy(copy->data(), data_, size_);
    return copy;
  }

 private:
  uint32_t size_;
  uint8_t* data_;
};

using PageRef = std::shared_ptr<const PageBuffer>;

}  // namespace dagvault::mailstore
