// virtio-blk (virtio 1.2 §5.2): a raw disk image (or host block device) as a guest block device.
// One request queue; requests are served synchronously in notify(): reads and writes go straight
// between the image file and guest memory with pread/pwrite, flushes are fdatasync.
//
// Every request is untrusted: its layout, lengths and sector range are checked, and a bad request
// completes with VIRTIO_BLK_S_IOERR (the guest's I/O fails, nothing else does). A chain the queue
// itself rejects is a broken driver: the device signals a device error and stops until reset().
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"
#include "base/error.h"
#include "memory/guest_memory.h"
#include "base/unique_fd.h"

namespace microvm::devices::virtio {

struct BlockOptions {
  std::string path;        // raw image file (or block device) on the host
  bool read_only = false;  // opened O_RDONLY; VIRTIO_BLK_F_RO offered; guest writes get VIRTIO_BLK_S_IOERR
  std::string id;          // serial returned by VIRTIO_BLK_T_GET_ID (at most 20 bytes); empty: the file's basename
};

// Counters since open(); a snapshot, each field read atomically.
struct BlockStats {
  std::uint64_t requests = 0;       // descriptor chains completed
  std::uint64_t read_bytes = 0;     // bytes read from the image into guest memory
  std::uint64_t written_bytes = 0;  // bytes written from guest memory to the image
  std::uint64_t flushes = 0;        // successful VIRTIO_BLK_T_FLUSH requests
  std::uint64_t errors = 0;         // requests completed with a status other than VIRTIO_BLK_S_OK, or none at all
};

class BlockDevice final : public VirtioDevice {
 public:
  static constexpr std::uint64_t kSectorSize = 512;              // §5.2.4: capacity and sector are in 512-byte units
  static constexpr std::size_t kIdBytes = 20;                    // §5.2.6: VIRTIO_BLK_ID_BYTES
  static constexpr std::uint32_t kSegMax = Queue::kMaxSize - 2;  // data segments: a chain minus header and status

  // Opens the image; errors are one line naming the path ("cannot open drive X: ...").
  static Result<std::unique_ptr<BlockDevice>> open(const BlockOptions& options);

  [[nodiscard]] std::uint64_t capacity_sectors() const { return capacity_sectors_; }
  [[nodiscard]] bool read_only() const { return read_only_; }
  [[nodiscard]] BlockStats stats() const;  // thread-safe

  // VirtioDevice
  [[nodiscard]] std::uint32_t device_id() const override;
  [[nodiscard]] std::uint64_t features() const override;
  [[nodiscard]] std::size_t queue_count() const override { return 1; }
  void read_config(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  [[nodiscard]] Result<void> activate(const GuestMemory& memory, std::span<Queue> queues, std::uint64_t acked_features,
                                      Interrupt& interrupt) override;
  void notify(std::uint16_t queue) override;
  void reset() override;

 private:
  struct Request;  // one parsed descriptor chain (block.cpp)

  BlockDevice(UniqueFd fd, std::string path, bool read_only, std::uint64_t capacity_sectors, std::string id);

  // Serves one chain and returns the used length (bytes written to its device-writable buffers).
  [[nodiscard]] Result<std::uint32_t> process(const DescriptorChain& chain);
  std::uint8_t serve(const Request& request, std::uint32_t& written);
  std::uint8_t read_sectors(const Request& request, std::uint32_t& written);
  std::uint8_t write_sectors(const Request& request);
  std::uint8_t flush();
  std::uint8_t get_id(const Request& request, std::uint32_t& written);
  std::uint8_t reject(const Error& error);      // a request the guest got wrong: IOERR, logged once
  std::uint8_t host_error(const Error& error);  // the host I/O failed: IOERR, logged once
  void stop(const Error& error);                // the driver broke the queue: device error until reset()

  const UniqueFd fd_;
  const std::string path_;
  const bool read_only_;
  const std::uint64_t capacity_sectors_;
  const std::array<std::uint8_t, kIdBytes> id_;  // NUL-padded (§5.2.6)

  std::mutex mutex_;  // the fields below
  const GuestMemory* memory_ = nullptr;
  Queue* queue_ = nullptr;
  Interrupt* interrupt_ = nullptr;
  bool failed_ = false;  // signal_device_error() sent; nothing is processed until reset()
  bool logged_bad_request_ = false;
  bool logged_host_error_ = false;
  bool logged_no_status_ = false;

  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> read_bytes_{0};
  std::atomic<std::uint64_t> written_bytes_{0};
  std::atomic<std::uint64_t> flushes_{0};
  std::atomic<std::uint64_t> errors_{0};
};

}  // namespace microvm::devices::virtio
