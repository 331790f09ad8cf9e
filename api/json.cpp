#include "api/json.h"

#include <fmt/format.h>

#include <set>
#include <vector>

#include "base/error.h"

namespace microvm::api {

using nlohmann::json;

std::string json_text(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string quote(std::string_view text) {
  if (text.size() <= kMaxQuoted) return fmt::format("`{}`", text);
  return fmt::format("`{}...`", text.substr(0, kMaxQuoted));
}

std::string describe(const json& value) {
  if (value.is_number()) return json_text(value);
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_null()) return "null";
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    return text.size() <= kMaxQuoted ? fmt::format("the string {}", json_text(value)) : "a long string";
  }
  return fmt::format("an {}", value.type_name());  // array, object, binary
}

Result<json> parse_json(std::string_view text) {
  // Thrown from the parser callback to stop at the first violation.
  struct Rejected {
    std::string message;
  };
  std::vector<std::set<std::string>> keys;  // the keys seen so far in each open object
  const json::parser_callback_t check = [&keys](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth) throw Rejected{fmt::format("JSON nests deeper than {} levels", kMaxJsonDepth)};
    switch (event) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          throw Rejected{fmt::format("duplicate field {}", quote(parsed.get<std::string>()))};
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text, check, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const Rejected& rejected) {
    return fail("invalid JSON: {}", rejected.message);
  } catch (const json::exception& error) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." without the tag.
    std::string_view message = error.what();
    if (const auto tag_end = message.find("] "); message.starts_with("[json.") && tag_end != std::string_view::npos) {
      message.remove_prefix(tag_end + 2);
    }
    return fail("invalid JSON: {}", message);
  }
}

}  // namespace microvm::api
