#include "guest/init/workload.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "guest/protocol/result.h"

namespace microvm::guest {

namespace {

std::string_view key_of(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

std::string exec_message(std::string_view name, std::string_view what) {
  return "exec " + in_quotes(name) + ": " + std::string(what);
}

// errno texts as Go (and so Docker) prints them: lower case.
std::string errno_text(int err) {
  switch (err) {
    case ENOENT: return "no such file or directory";
    case EACCES: return "permission denied";
    case ENOEXEC: return "exec format error";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "not a directory";
    default: {
      std::string text = std::strerror(err);
      if (!text.empty()) text.front() = static_cast<char>(std::tolower(static_cast<unsigned char>(text.front())));
      return text;
    }
  }
}

// 0 when `path` is an executable regular file for the caller, else the errno that says why not.
int check_executable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  if (!S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0) return EACCES;
  return 0;
}

}  // namespace

std::optional<std::string_view> env_value(const std::vector<std::string>& env, std::string_view key) {
  std::optional<std::string_view> value;
  for (const std::string& entry : env) {
    if (key_of(entry) == key && entry.size() > key.size()) value = std::string_view(entry).substr(key.size() + 1);
  }
  return value;
}

std::vector<std::string> workload_environment(const std::vector<std::string>& env, std::string_view hostname,
                                              std::string_view home) {
  std::vector<std::string> out;
  for (const std::string& entry : env) {
    const auto same_key = [&](const std::string& existing) { return key_of(existing) == key_of(entry); };
    if (auto found = std::find_if(out.begin(), out.end(), same_key); found != out.end()) {
      *found = entry;
    } else {
      out.push_back(entry);
    }
  }
  if (!hostname.empty() && !env_value(out, "HOSTNAME")) {
    const bool path_first = !out.empty() && key_of(out.front()) == "PATH";
    out.insert(out.begin() + (path_first ? 1 : 0), "HOSTNAME=" + std::string(hostname));
  }
  if (!env_value(out, "HOME")) out.push_back("HOME=" + std::string(home));
  return out;
}

LookupResult find_executable(std::string_view name, std::string_view path_variable) {
  if (name.find('/') != std::string_view::npos) {
    const int err = check_executable(std::string(name));
    if (err == 0) return {std::string(name), std::nullopt};
    const int code = (err == ENOENT || err == ENOTDIR) ? kExitNotFound : kExitCannotExecute;
    return {std::nullopt, ExecFailure{code, exec_message(name, errno_text(err))}};
  }
  std::optional<int> denied;  // why the last candidate that exists was refused
  if (!name.empty()) {
    while (true) {
      const std::size_t colon = path_variable.find(':');
      std::string dir(path_variable.substr(0, colon));
      if (dir.empty()) dir = ".";
      const std::string candidate = dir + "/" + std::string(name);
      const int err = check_executable(candidate);
      if (err == 0) return {candidate, std::nullopt};
      if (err == EACCES) denied = err;  // like execvp: keep looking, report EACCES if nothing better
      if (colon == std::string_view::npos) break;
      path_variable.remove_prefix(colon + 1);
    }
  }
  if (denied) return {std::nullopt, ExecFailure{kExitCannotExecute, exec_message(name, errno_text(*denied))}};
  return {std::nullopt, ExecFailure{kExitNotFound, exec_message(name, "executable file not found in $PATH")}};
}

ExecFailure exec_failure(std::string_view name, int err) {
  const int code = (err == ENOENT || err == ENOTDIR) ? kExitNotFound : kExitCannotExecute;
  return ExecFailure{code, exec_message(name, errno_text(err))};
}

int exit_status_from_wait(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return kExitSignalBase + WTERMSIG(wait_status);
  return kExitSetupFailed;  // stopped/continued are not terminations: callers never pass them
}

StopSequence::Action StopSequence::update(Clock::time_point now, bool stop_requested) {
  if (!kill_at_) {
    if (!stop_requested) return Action::kNone;
    kill_at_ = now + grace_;
    return Action::kTerminate;
  }
  if (!killed_ && now >= *kill_at_) {
    killed_ = true;
    return Action::kKill;
  }
  return Action::kNone;
}

std::optional<StopSequence::Clock::time_point> StopSequence::kill_deadline() const {
  if (!kill_at_ || killed_) return std::nullopt;
  return kill_at_;
}

}  // namespace microvm::guest
