// The OCI runtime's entry point, called by main() when is_oci_invocation() says so.
#pragma once

#include <string>
#include <vector>

#include "runtime/oci/runtime.h"

namespace microvm::oci {

// Parses `args` (argv without argv[0]), runs the verb and returns the process's exit status: 0, 1
// with one line on stderr (and in --log) on any error, as runc; for the VMM process (create, run),
// the VM's. `environment.root` is replaced by --root.
[[nodiscard]] int oci_main(const std::vector<std::string>& args, RuntimeEnvironment environment, const RunVm& run_vm);

}  // namespace microvm::oci
