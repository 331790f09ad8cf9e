#include "runtime/warm_start.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "vmm/snapshot/crc64.h"
#include "vmm/snapshot/state_file.h"

namespace microvm::runtime {

namespace {

// Bumped when what a template holds changes in a way the inputs do not show.
constexpr std::string_view kKeyFormat = "microvm warm-start template 1";
constexpr std::string_view kStateName = "state";
constexpr std::string_view kMemoryName = "memory";
constexpr std::string_view kInputsName = "inputs";
constexpr std::string_view kNeutralCommand = "/microvm-template";  // never run: the template has no spec
constexpr unsigned kDirMode = 0700;                                // templates hold guest memory: the user's only
constexpr std::int64_t kNsPerSecond = 1'000'000'000;

std::string describe(const FileIdentity& file) {
  return fmt::format("{} dev={} ino={} size={} mtime_ns={}", file.path, file.device, file.inode, file.size,
                     file.mtime_ns);
}

Result<void> make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail_host("cannot create the template directory {}: {}", dir, ec.message());
  return {};
}

}  // namespace

Result<FileIdentity> identify_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail("cannot stat {}: {}", path, errno_text(errno));
  return FileIdentity{path, static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                      static_cast<std::uint64_t>(st.st_size),
                      static_cast<std::int64_t>(st.st_mtim.tv_sec) * kNsPerSecond + st.st_mtim.tv_nsec};
}

vmm::VmResources template_resources(const vmm::VmResources& run) {
  vmm::VmResources t;
  t.boot_source = run.boot_source;
  t.machine_config = run.machine_config;
  for (vmm::DriveConfig drive : run.drives) {
    drive.path_on_host.clear();
    t.drives.push_back(std::move(drive));
  }
  for (const vmm::NetworkInterfaceConfig& net : run.network_interfaces) {
    t.network_interfaces.push_back({net.iface_id, net.host_dev_name, net.guest_mac, {}, {}, {}});
  }
  t.container = vmm::ContainerSpec{};
  t.container->args = {std::string(kNeutralCommand)};
  t.console = run.console;
  t.warm_template = true;
  return t;
}

std::string describe_inputs(const TemplateInputs& in) {
  const vmm::VmResources& r = in.resources;
  std::string text = fmt::format("{}\nvmm {}\nkernel {}\ninit {}\ncmdline {}\nvcpus {}\nmemory_mib {}\nsmt {}\n",
                                 kKeyFormat, describe(in.vmm), describe(in.kernel), describe(in.init), in.cmdline,
                                 r.machine_config.vcpu_count, r.machine_config.mem_size_mib, r.machine_config.smt);
  text += fmt::format("console {}\n", r.console == vmm::ConsoleKind::kVirtio ? "virtio" : "serial");
  for (const vmm::DriveConfig& d : r.drives_in_guest_order()) {
    text += fmt::format("drive id={} root={} read_only={}\n", d.drive_id, d.is_root_device, d.is_read_only);
  }
  for (const vmm::NetworkInterfaceConfig& n : r.network_interfaces) {
    text += fmt::format("net id={} mac={}\n", n.iface_id, n.guest_mac.value_or("default"));
  }
  return text;
}

std::string template_key(const TemplateInputs& inputs) {
  const std::string text = describe_inputs(inputs);
  return fmt::format("{:016x}", snapshot::crc64(std::as_bytes(std::span(text.data(), text.size()))));
}

Result<TemplateInputs> template_inputs(const vmm::VmResources& run, const std::string& vmm_binary,
                                       const std::string& init_binary, bool verbose) {
  TemplateInputs in;
  in.vmm = TRY_CONTEXT("the microvm binary", identify_file(vmm_binary));
  in.kernel = TRY_CONTEXT("the kernel", identify_file(run.boot_source.kernel_image_path));
  in.init = TRY_CONTEXT("the container init", identify_file(init_binary));
  in.resources = template_resources(run);
  in.cmdline = in.resources.kernel_cmdline(verbose);
  return in;
}

vmm::SnapshotFiles TemplateCache::files(const std::string& key) const {
  const std::string dir = template_dir(key);
  return {fmt::format("{}/{}", dir, kStateName), fmt::format("{}/{}", dir, kMemoryName)};
}

Result<TemplateCache::Lock> TemplateCache::lock(const std::string& key, int operation) const {
  TRY_VOID(make_dir(dir_));
  const std::string path = fmt::format("{}/{}.lock", dir_, key);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return fail_host("cannot open the template lock {}: {}", path, errno_text(errno));
  while (::flock(fd.get(), operation) != 0) {
    if (errno != EINTR) return fail_host("cannot lock {}: {}", path, errno_text(errno));
  }
  return Lock(std::move(fd));
}

Result<TemplateCache::Lock> TemplateCache::lock_shared(const std::string& key) const {
  return lock(key, LOCK_SH);
}

TemplateCache::Found TemplateCache::find(const std::string& key) const {
  Found found;
  found.files = files(key);
  struct stat st {};
  if (::stat(template_dir(key).c_str(), &st) != 0) return found;  // kMissing
  found.state = Found::State::kBroken;
  auto bytes = snapshot::read_state_file(found.files.state_path);
  if (!bytes) {
    found.reason = bytes.error().message;
    return found;
  }
  if (auto parsed = snapshot::StateFile::parse(*bytes, snapshot::host_cpu_model()); !parsed) {
    found.reason = fmt::format("state file {}: {}", found.files.state_path, parsed.error().message);
    return found;
  }
  if (::stat(found.files.memory_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    found.reason = fmt::format("no memory file {}", found.files.memory_path);
    return found;
  }
  found.state = Found::State::kReady;
  return found;
}

Result<TemplateCache::Staging> TemplateCache::stage(const std::string& key) const {
  TRY_VOID(make_dir(dir_));
  std::string dir = fmt::format("{}/.{}.XXXXXX", dir_, key);
  if (::mkdtemp(dir.data()) == nullptr) return fail_host("cannot create {}: {}", dir, errno_text(errno));
  ::chmod(dir.c_str(), kDirMode);
  return Staging{dir, {fmt::format("{}/{}", dir, kStateName), fmt::format("{}/{}", dir, kMemoryName)}};
}

void TemplateCache::discard(const Staging& staging) const {
  std::error_code ec;
  std::filesystem::remove_all(staging.dir, ec);
  if (ec) spdlog::debug("cannot remove {}: {}", staging.dir, ec.message());
}

Result<bool> TemplateCache::publish(const Staging& staging, const std::string& key, const std::string& inputs,
                                    bool replace_usable) const {
  {
    std::ofstream file(fmt::format("{}/{}", staging.dir, kInputsName), std::ios::trunc);
    file << inputs;
  }
  const Lock held = TRY(lock(key, LOCK_EX));
  const std::string final_dir = template_dir(key);
  const Found existing = find(key);
  if (existing.state == Found::State::kReady && !replace_usable) {
    discard(staging);
    return false;
  }
  if (existing.state != Found::State::kMissing) {
    // Moved aside first, so that the name is free for one rename: no run sees a half-removed one
    // (and one that mapped its memory file keeps its pages).
    const std::string aside = fmt::format("{}.broken", staging.dir);
    if (::rename(final_dir.c_str(), aside.c_str()) != 0) {
      const int err = errno;
      discard(staging);
      return fail_host("cannot move the broken template {} aside: {}", final_dir, errno_text(err));
    }
    std::error_code ec;
    std::filesystem::remove_all(aside, ec);
  }
  if (::rename(staging.dir.c_str(), final_dir.c_str()) != 0) {
    const int err = errno;
    discard(staging);
    return fail_host("cannot publish the template {}: {}", final_dir, errno_text(err));
  }
  return true;
}

}  // namespace microvm::runtime
