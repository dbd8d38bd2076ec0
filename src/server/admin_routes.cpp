// The admin API (with a store and an admin key) and the public waitlist route:
//   GET/POST /admin/tiers, GET/POST /admin/keys, DELETE /admin/keys/{id},
//   GET /admin/access-requests?status=, POST /admin/access-requests/{id}/approve|reject,
//   GET /admin/usage?key=&from=&to=, and POST /v1/access-requests (no key needed).
// Admin routes need `Authorization: Bearer <admin key>`; anything else is 401.
#include <httplib.h>

#include <algorithm>

#include "server/api_error.h"
#include "server/http_server.h"
#include "server/http_util.h"

namespace muse::server {

using nlohmann::ordered_json;

namespace {

ordered_json tier_json(const platform::Tier& t) {
  return {{"object", "tier"},
          {"name", t.name},
          {"requests_per_minute", t.requests_per_minute},
          {"tokens_per_minute", t.tokens_per_minute},
          {"monthly_tokens", t.monthly_tokens},
          {"models", t.models},
          {"priority", t.priority}};
}

ordered_json key_json(const platform::ApiKeyInfo& k) {
  return {{"object", "api_key"},
          {"id", k.id},
          {"name", k.name},
          {"tier", k.tier},
          {"prefix", k.prefix},
          {"created", k.created},
          {"expires_at", k.expires_at},
          {"revoked_at", k.revoked_at}};
}

ordered_json request_json(const platform::AccessRequest& r) {
  return {{"object", "access_request"},
          {"id", r.id},
          {"name", r.name},
          {"email", r.email},
          {"use_case", r.use_case},
          {"status", r.status},
          {"created", r.created},
          {"decided_at", r.decided_at},
          {"key_id", r.key_id}};
}

ordered_json list_json(ordered_json data) {
  return {{"object", "list"}, {"data", std::move(data)}};
}

ordered_json parse_body(const httplib::Request& req, int64_t max_depth) {
  if (req.body.empty()) return ordered_json::object();
  return parse_request_body(req.body, max_depth);
}

// A required string field of at most `max_length` bytes.
std::string string_field(const ordered_json& body, const char* name, size_t max_length) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string() || it->get<std::string>().empty())
    throw invalid_request(std::string(name) + " must be a non-empty string", name);
  std::string value = it->get<std::string>();
  if (value.size() > max_length)
    throw invalid_request(
        std::string(name) + " is longer than " + std::to_string(max_length) + " characters", name);
  return value;
}

int64_t count_field(const ordered_json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return 0;
  if (!it->is_number_integer() || it->get<int64_t>() < 0)
    throw invalid_request(std::string(name) + " must be a non-negative integer (0 = unlimited)",
                          name);
  return it->get<int64_t>();
}

platform::Tier parse_tier(const ordered_json& body) {
  platform::Tier t;
  t.name = string_field(body, "name", 64);
  t.requests_per_minute = count_field(body, "requests_per_minute");
  t.tokens_per_minute = count_field(body, "tokens_per_minute");
  t.monthly_tokens = count_field(body, "monthly_tokens");
  if (auto it = body.find("models"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw invalid_request("models must be an array of model names", "models");
    for (const auto& m : *it) {
      if (!m.is_string() || m.get<std::string>().empty())
        throw invalid_request("models must be an array of model names", "models");
      t.models.push_back(m.get<std::string>());
    }
  }
  if (auto it = body.find("priority"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || std::abs(it->get<int64_t>()) > 1000)
      throw invalid_request("priority must be an integer in [-1000, 1000]", "priority");
    t.priority = int(it->get<int64_t>());
  }
  return t;
}

std::optional<platform::AccessRequest> find_request(platform::Store& store, int64_t id) {
  for (auto& r : store.access_requests())
    if (r.id == id) return r;
  return std::nullopt;
}

ApiError not_found(const std::string& what) {
  return ApiError(404, "invalid_request_error", what + " does not exist", "", "not_found");
}

int64_t id_param(const std::string& text) {
  try {
    size_t used = 0;
    const int64_t id = std::stoll(text, &used);
    if (used == text.size()) return id;
  } catch (const std::exception&) {
  }
  throw not_found("access request " + text);
}

// "YYYY-MM-DD" or "".
std::string day_param(const httplib::Request& req, const char* name) {
  const std::string v = req.get_param_value(name);
  const bool ok =
      v.empty() ||
      (v.size() == 10 && v[4] == '-' && v[7] == '-' &&
       std::all_of(v.begin(), v.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; }));
  if (!ok) throw invalid_request(std::string(name) + " must be a day YYYY-MM-DD", name);
  return v;
}

}  // namespace

void HttpServer::install_access_request_route() {
  http_->Post("/v1/access-requests", [this](const httplib::Request& req, httplib::Response& res) {
    try {
      const ordered_json body = parse_body(req, limits_.max_json_depth);
      const std::string name = string_field(body, "name", 200);
      const std::string email = string_field(body, "email", 254);
      const std::string use_case = string_field(body, "use_case", 4000);
      const size_t at = email.find('@');
      if (at == std::string::npos || at == 0 || at + 1 == email.size() ||
          email.find('@', at + 1) != std::string::npos ||
          email.find_first_of(" \t\r\n") != std::string::npos)
        throw invalid_request("email must be an email address (name@domain)", "email");
      const int64_t id = access_.store()->add_access_request(name, email, use_case, access_.now());
      respond_json(res, 201, {{"object", "access_request"}, {"id", id}, {"status", "pending"}});
    } catch (const ApiError& e) {
      respond_error(res, e);
    }
  });
}

void HttpServer::install_admin_routes() {
  platform::Store& store = *access_.store();
  // Every admin handler: admin key check, then the handler; bad input becomes a 400.
  auto admin = [this](auto handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        const std::string header = req.get_header_value("Authorization");
        const std::string_view key = ApiKeys::bearer_token(header);
        if (key.empty() || !admin_key_.verify(key))
          throw ApiError(401, "invalid_request_error",
                         "The admin API needs 'Authorization: Bearer <admin key>'.", "",
                         "invalid_api_key");
        handler(req, res);
      } catch (const ApiError& e) {
        respond_error(res, e);
      } catch (const Error& e) {
        respond_error(res, invalid_request(e.what()));
      }
    };
  };

  http_->Get("/admin/tiers", admin([&store](const httplib::Request&, httplib::Response& res) {
               ordered_json data = ordered_json::array();
               for (const auto& t : store.tiers()) data.push_back(tier_json(t));
               respond_json(res, 200, list_json(data));
             }));
  http_->Post("/admin/tiers",
              admin([this, &store](const httplib::Request& req, httplib::Response& res) {
                const platform::Tier t = parse_tier(parse_body(req, limits_.max_json_depth));
                store.upsert_tier(t);
                respond_json(res, 200, tier_json(t));
              }));

  http_->Get("/admin/keys", admin([&store](const httplib::Request&, httplib::Response& res) {
               ordered_json data = ordered_json::array();
               for (const auto& k : store.keys()) data.push_back(key_json(k));
               respond_json(res, 200, list_json(data));
             }));
  http_->Post(
      "/admin/keys", admin([this, &store](const httplib::Request& req, httplib::Response& res) {
        const ordered_json body = parse_body(req, limits_.max_json_depth);
        const std::string name = string_field(body, "name", 200);
        const std::string tier = string_field(body, "tier", 64);
        const int64_t expires_at = count_field(body, "expires_at");
        if (!store.find_tier(tier))
          throw invalid_request("tier '" + tier + "' does not exist", "tier");
        const platform::IssuedKey issued = store.create_key(name, tier, expires_at, access_.now());
        ordered_json out = key_json(issued.info);
        out["secret"] = issued.secret;  // shown this once
        respond_json(res, 201, out);
      }));
  http_->Delete(R"(/admin/keys/([^/]+))",
                admin([this, &store](const httplib::Request& req, httplib::Response& res) {
                  const std::string id = req.matches[1];
                  if (!store.revoke_key(id, access_.now())) throw not_found("key " + id);
                  ordered_json out = key_json(*store.find_key(id));
                  out["revoked"] = true;
                  respond_json(res, 200, out);
                }));

  http_->Get(
      "/admin/access-requests",
      admin([&store](const httplib::Request& req, httplib::Response& res) {
        const std::string status = req.get_param_value("status");
        if (!status.empty() && status != "pending" && status != "approved" && status != "rejected")
          throw invalid_request("status must be pending, approved or rejected", "status");
        ordered_json data = ordered_json::array();
        for (const auto& r : store.access_requests(status)) data.push_back(request_json(r));
        respond_json(res, 200, list_json(data));
      }));
  auto pending = [&store](const std::string& id_text) {
    const int64_t id = id_param(id_text);
    const auto r = find_request(store, id);
    if (!r) throw not_found("access request " + id_text);
    if (r->status != "pending")
      throw ApiError(409, "invalid_request_error",
                     "access request " + id_text + " is already " + r->status, "", "conflict");
    return id;
  };
  http_->Post(
      R"(/admin/access-requests/(\d+)/approve)",
      admin([this, &store, pending](const httplib::Request& req, httplib::Response& res) {
        const int64_t id = pending(req.matches[1]);
        const std::string tier = string_field(parse_body(req, limits_.max_json_depth), "tier", 64);
        if (!store.find_tier(tier))
          throw invalid_request("tier '" + tier + "' does not exist", "tier");
        const platform::IssuedKey issued = store.approve_access_request(id, tier, access_.now());
        ordered_json out = request_json(*find_request(store, id));
        ordered_json key = key_json(issued.info);
        key["secret"] = issued.secret;
        out["key"] = key;
        respond_json(res, 200, out);
      }));
  http_->Post(R"(/admin/access-requests/(\d+)/reject)",
              admin([this, &store, pending](const httplib::Request& req, httplib::Response& res) {
                const int64_t id = pending(req.matches[1]);
                store.reject_access_request(id, access_.now());
                respond_json(res, 200, request_json(*find_request(store, id)));
              }));

  http_->Get(
      "/admin/usage", admin([this, &store](const httplib::Request& req, httplib::Response& res) {
        const auto rows =
            store.usage(req.get_param_value("key"), day_param(req, "from"), day_param(req, "to"));
        ordered_json data = ordered_json::array();
        platform::UsageRow total;
        double total_cost = 0;
        for (const auto& r : rows) {
          // Dollars per million tokens; models without a price cost 0.
          double cost = 0;
          if (auto p = config_.prices.find(r.model); p != config_.prices.end())
            cost = (double(r.prompt_tokens) * p->second.prompt +
                    double(r.completion_tokens) * p->second.completion) /
                   1e6;
          data.push_back({{"key_id", r.key_id},
                          {"model", r.model},
                          {"day", r.day},
                          {"requests", r.requests},
                          {"prompt_tokens", r.prompt_tokens},
                          {"completion_tokens", r.completion_tokens},
                          {"media_inputs", r.media_inputs},
                          {"cost", cost}});
          total.requests += r.requests;
          total.prompt_tokens += r.prompt_tokens;
          total.completion_tokens += r.completion_tokens;
          total.media_inputs += r.media_inputs;
          total_cost += cost;
        }
        ordered_json out = list_json(data);
        out["totals"] = {{"requests", total.requests},
                         {"prompt_tokens", total.prompt_tokens},
                         {"completion_tokens", total.completion_tokens},
                         {"media_inputs", total.media_inputs},
                         {"cost", total_cost}};
        respond_json(res, 200, out);
      }));
}

}  // namespace muse::server
