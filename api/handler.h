// The HTTP-independent half of the API: one parsed request in, one response out, with Firecracker's
// paths, methods, field names and status codes. Pure (no I/O): unit-tested and fuzzed without
// sockets; the Server (api/http/server.h) runs it on the VMM thread for each request it reads.
#pragma once

#include "api/controller.h"
#include "api/message.h"
#include "api/status.h"

namespace microvm::api {

// Routes `request` through the route table (api/routes.h) to `controller`, on the caller's thread.
// Never throws for any request: bad input is a 4xx with a fault_message naming what is wrong, a
// Controller error the status of its kind (api/status.h), an exception from the controller a 500.
[[nodiscard]] Response handle(Controller& controller, const Request& request);

}  // namespace microvm::api
