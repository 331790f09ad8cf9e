#include "runtime/oci/rootfs_image.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace microvm::oci {

namespace {

// Bumped when what the key covers, or how the image is made from it, changes.
constexpr std::string_view kKeyVersion = "microvm-oci-rootfs-v1";
// PATH for the builder when the caller has none (conmon runs runtimes without one).
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct DigestDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

class Sha256 {
 public:
  static Result<Sha256> create() {
    std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return fail_host("cannot start a SHA-256");
    return Sha256(std::move(ctx));
  }
  void update(std::string_view bytes) { EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()); }
  // A field and its end: no two different sequences of fields hash the same bytes.
  void field(std::string_view bytes) {
    update(std::to_string(bytes.size()));
    update(":");
    update(bytes);
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &size);
    std::string out;
    for (unsigned int i = 0; i < size; ++i) out += fmt::format("{:02x}", digest[i]);
    return out;
  }

 private:
  explicit Sha256(std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx) : ctx_(std::move(ctx)) {}
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx_;
};

void hash_entry(Sha256& sha, const std::string& relative, const struct stat& st, const std::string& link_target) {
  sha.field(relative);
  sha.field(fmt::format("{:o} {} {} {} {}.{:09} {}", st.st_mode, st.st_uid, st.st_gid,
                        S_ISDIR(st.st_mode) ? 0 : st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                        S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_rdev : 0));
  sha.field(link_target);
}

Result<void> hash_tree(Sha256& sha, const std::filesystem::path& dir, const std::string& relative) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) return fail("cannot read the root directory {}: {}", dir.string(), ec.message());
  std::ranges::sort(names);  // readdir order is the file system's
  for (const std::string& name : names) {
    const std::filesystem::path path = dir / name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return fail("cannot stat {}: {}", path.string(), errno_text(errno));
    std::string target;
    if (S_ISLNK(st.st_mode)) {
      target = std::filesystem::read_symlink(path, ec).string();
      if (ec) return fail("cannot read the symlink {}: {}", path.string(), ec.message());
    }
    const std::string child = relative + "/" + name;
    hash_entry(sha, child, st, target);
    if (S_ISDIR(st.st_mode)) TRY_VOID(hash_tree(sha, path, child));
  }
  return {};
}

// Runs `builder SRC -o OUT` with its stdout and stderr captured (they are not the container's).
Result<void> run_builder(const std::filesystem::path& builder, const std::filesystem::path& rootfs,
                         const std::filesystem::path& out) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return fail_host("cannot create a pipe: {}", errno_text(errno));
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  std::vector<std::string> args{builder.string(), rootfs.string(), "-o", out.string()};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return fail_host("cannot fork the rootfs builder: {}", errno_text(errno));
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, STDIN_FILENO);
    ::dup2(write_end.get(), STDOUT_FILENO);
    ::dup2(write_end.get(), STDERR_FILENO);
    if (std::getenv("PATH") == nullptr) ::setenv("PATH", kDefaultPath, 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  write_end.reset();
  std::string output;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(read_end.get(), buffer, sizeof(buffer))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(buffer, static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  const std::size_t last = output.rfind('\n');
  const std::string line = last == std::string::npos ? output : output.substr(last + 1);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && line.empty()) {
    return fail("cannot run the rootfs builder {}", builder.string());
  }
  return fail("making the root file system image from {} failed: {}", rootfs.string(),
              line.empty() ? fmt::format("{} exited with status {}", builder.string(), status) : line);
}

}  // namespace

std::filesystem::path cache_dir() {
  if (const char* cache = std::getenv("MICROVM_CACHE"); cache != nullptr && *cache != '\0') return cache;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::filesystem::path(xdg) / "microvm";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/root") / ".cache" / "microvm";
}

Result<std::string> tree_key(const std::filesystem::path& dir, std::string_view salt) {
  Sha256 sha = TRY(Sha256::create());
  sha.field(kKeyVersion);
  sha.field(salt);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return fail("cannot stat the root directory {}: {}", dir.string(), errno_text(errno));
  if (!S_ISDIR(st.st_mode)) return fail("the root {} is not a directory", dir.string());
  hash_entry(sha, "", st, "");
  TRY_VOID(hash_tree(sha, dir, ""));
  return sha.hex();
}

Result<RootfsImage> rootfs_image(const std::filesystem::path& rootfs, const std::filesystem::path& cache,
                                 const std::filesystem::path& fallback_dir, const std::filesystem::path& builder) {
  struct stat builder_stat {};
  if (::stat(builder.c_str(), &builder_stat) != 0) {
    return fail("the rootfs builder {} is missing: {}", builder.string(), errno_text(errno));
  }
  const std::string salt =
      fmt::format("{} {}.{}", builder_stat.st_size, builder_stat.st_mtim.tv_sec, builder_stat.st_mtim.tv_nsec);
  const std::string key = TRY(tree_key(rootfs, salt));
  const std::filesystem::path dir = cache / kImageCacheSubdir;
  const std::filesystem::path image = dir / (key + ".ext4");
  std::error_code ec;
  if (std::filesystem::is_regular_file(image, ec)) return RootfsImage{image, true, false};
  std::filesystem::create_directories(dir, ec);
  if (!ec && ::access(dir.c_str(), W_OK) == 0) {
    TRY_VOID(run_builder(builder, rootfs, image));
    return RootfsImage{image, true, true};
  }
  const std::filesystem::path own = fallback_dir / kFallbackImageName;
  TRY_VOID(run_builder(builder, rootfs, own));
  return RootfsImage{own, false, true};
}

}  // namespace microvm::oci
