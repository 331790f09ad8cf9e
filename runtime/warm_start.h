// Warm start of container mode (`microvm start [opts] -- CMD`): the first run for a template key
// boots its VM as a template (VmResources::warm_template: the initramfs has no spec, every drive
// is empty, capacity 0), and when microvm-init says it waits for its spec (status port kSpecWanted,
// guest/protocol/status_port.h) the VMM pauses the VM, saves a snapshot of it here, and goes on:
// it attaches this run's images, hands the init this run's spec (Machine::begin_run) and resumes.
// Later runs restore that snapshot (guest RAM MAP_PRIVATE from the memory file) and do the same.
//
// Why the guest never sees a block of another run's image: the template's drives had no image
// when the guest probed them (capacity 0: Linux reads nothing beyond a disk's capacity, so no
// partition scan and nothing in the page cache), and each run attaches its own image only after
// the restore, with a virtio configuration change that makes virtio_blk re-read the capacity.
//
// The template key is a hash of everything the snapshot depends on: the microvm binary, the kernel
// and the init (path and file identity: device, inode, size, mtime), the kernel command line, vCPUs,
// memory, console kind, and the device set (each drive's id, position, root and read-only flag;
// each network interface's id and MAC). Inputs that change give another key: a new template.
//
// Files, under <cache>/templates/ (<cache> as tools/cache-dir: $MICROVM_CACHE, else
// ${XDG_CACHE_HOME:-~/.cache}/microvm):
//   <key>/state, <key>/memory   the snapshot (vmm/snapshot/state_file.h)
//   <key>/inputs                what the key was made of (for people)
//   <key>.lock                  flock(2): shared while a run reads the template (until its memory
//                               is mapped), exclusive while a template is published or replaced
//   .<key>.XXXXXX/              a template being saved: renamed to <key>/ once complete
// A run never sees a torn template: the directory appears complete, by rename(2); a run that mapped
// an old template's memory keeps its pages when it is replaced. Two cold runs of one key both save
// one; the first to publish wins, the other's is removed. A template whose state file does not parse
// (bad magic, version, size, checksum, another CPU) or without its memory file is refused with one
// warning line, rebuilt by this run, and replaced when the new one is published.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/machine.h"
#include "vmm/vm_resources.h"

namespace microvm::runtime {

// What a file is, for the key: a changed file gets another identity.
struct FileIdentity {
  std::string path;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;

  bool operator==(const FileIdentity&) const = default;
};
[[nodiscard]] Result<FileIdentity> identify_file(const std::string& path);

// Everything a template depends on.
struct TemplateInputs {
  FileIdentity vmm;            // the microvm binary itself (its device model and snapshot format)
  FileIdentity kernel;         // the guest kernel
  FileIdentity init;           // microvm-init
  std::string cmdline;         // the kernel command line (console, verbosity, boot_args)
  vmm::VmResources resources;  // the template's own (template_resources)
};

// The template's resources for a run: the run's machine, kernel, console and device set, every drive
// empty (no path), network interfaces without the guest-side configuration the spec carries, and a
// neutral container (the run's command, env and files never go into the cache).
[[nodiscard]] vmm::VmResources template_resources(const vmm::VmResources& run);

// The text the key hashes (one field a line) and the key: 16 hex digits of its CRC-64.
[[nodiscard]] std::string describe_inputs(const TemplateInputs& inputs);
[[nodiscard]] std::string template_key(const TemplateInputs& inputs);

// The inputs of a run on this host: identifies the files (an error names the one that is missing).
[[nodiscard]] Result<TemplateInputs> template_inputs(const vmm::VmResources& run, const std::string& vmm_binary,
                                                     const std::string& init_binary, bool verbose);

class TemplateCache {
 public:
  // `dir` is <cache>/templates (created when missing, on first use).
  explicit TemplateCache(std::string dir) : dir_(std::move(dir)) {}

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string template_dir(const std::string& key) const { return dir_ + "/" + key; }
  [[nodiscard]] vmm::SnapshotFiles files(const std::string& key) const;

  // A held flock on <key>.lock; released when dropped.
  class Lock {
   public:
    Lock() = default;
    explicit Lock(UniqueFd fd) : fd_(std::move(fd)) {}

   private:
    UniqueFd fd_;
  };
  [[nodiscard]] Result<Lock> lock_shared(const std::string& key) const;

  struct Found {
    enum class State { kMissing, kReady, kBroken };
    State state = State::kMissing;
    vmm::SnapshotFiles files;
    std::string reason;  // kBroken: why, one line
  };
  // Whether the template of `key` is there and usable: its state file parses (magic, format
  // version, size, checksum, CPU model) and its memory file exists. Call with a shared lock held.
  [[nodiscard]] Found find(const std::string& key) const;

  // A template being saved: a fresh directory beside the final one.
  struct Staging {
    std::string dir;
    vmm::SnapshotFiles files;
  };
  [[nodiscard]] Result<Staging> stage(const std::string& key) const;
  // Publishes `staging` as the template of `key` (its inputs description beside it), under the
  // exclusive lock: a usable template already there is kept (another run was first: false, and
  // `staging` is removed) unless `replace_usable` (this run found that one would not restore); a
  // broken one is replaced. true: ours is the template now.
  [[nodiscard]] Result<bool> publish(const Staging& staging, const std::string& key, const std::string& inputs,
                                     bool replace_usable = false) const;
  // Removes a staging directory (a save that failed).
  void discard(const Staging& staging) const;

 private:
  [[nodiscard]] Result<Lock> lock(const std::string& key, int operation) const;
  std::string dir_;
};

}  // namespace microvm::runtime
