// Errors returned to API clients in OpenAI's shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// with OpenAI's HTTP status codes. Anything a request can trigger is reported this way;
// the server keeps serving.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "muse/error.h"

namespace muse::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string type, std::string message, std::string param = "",
           std::string code = "")
      : Error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;   // invalid_request_error, authentication_error, ...
  std::string param;  // the offending request field ("" -> null)
  std::string code;   // machine-readable code ("" -> null)

  nlohmann::ordered_json to_json() const;
};

// 400 invalid_request_error naming `param`.
ApiError invalid_request(const std::string& message, const std::string& param = "",
                         const std::string& code = "");

// Serialises JSON for the wire: invalid UTF-8 in strings (a token piece that ends inside
// a character) is replaced by U+FFFD instead of throwing.
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace muse::server
