// The operator's commands over the store (issue 8): `muse keys`, `muse tiers`,
// `muse access` and `muse usage`. Every command takes --store URL (default: the
// MUSE_STORE environment variable, else "sqlite:muse.db"): "sqlite:PATH", a path, or
// "postgresql://..." shared with the running `muse serve` replicas.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "muse/error.h"
#include "platform/store.h"

namespace muse::cli {
namespace {

using platform::Store;

std::string default_store() {
  const char* env = std::getenv("MUSE_STORE");
  return env != nullptr && *env != 0 ? env : "sqlite:muse.db";
}

std::shared_ptr<std::string> add_store_option(CLI::App& app) {
  auto url = std::make_shared<std::string>(default_store());
  app.add_option("--store", *url,
                 "Store: sqlite:PATH, a path, or postgresql://... (default: $MUSE_STORE, "
                 "else sqlite:muse.db)");
  return url;
}

int64_t now() {
  return static_cast<int64_t>(std::time(nullptr));
}

std::string format_time(int64_t t) {
  if (t == 0) return "-";
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return std::to_string(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string limit(int64_t n) {
  return n == 0 ? "unlimited" : std::to_string(n);
}

// Columns padded to their widest cell, two spaces apart.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out += line + '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void print_issued(const platform::IssuedKey& k) {
  std::cout << "id:     " << k.info.id << '\n'
            << "name:   " << k.info.name << '\n'
            << "tier:   " << k.info.tier << '\n'
            << "expires: " << format_time(k.info.expires_at) << '\n'
            << "secret: " << k.secret << '\n';
  std::cerr << "muse: store the secret now; it is not shown again (only its hash is kept)\n";
}

void check_day(const std::string& day, const char* option) {
  static const std::regex pattern("[0-9]{4}-[0-9]{2}-[0-9]{2}");
  MUSE_CHECK(day.empty() || std::regex_match(day, pattern), option, " '", day,
             "' is not a day (YYYY-MM-DD)");
}

}  // namespace

Runner add_keys_create(CLI::App& app) {
  struct Opts {
    std::string name, tier;
    int64_t expires_in_days = 0;
  };
  auto o = std::make_shared<Opts>();
  auto store = add_store_option(app);
  app.add_option("--name", o->name, "Who or what the key is for")->required();
  app.add_option("--tier", o->tier, "The key's tier (muse tiers set)")->required();
  app.add_option("--expires-in-days", o->expires_in_days, "Expire after this many days");
  return [o, store] {
    MUSE_CHECK(o->expires_in_days >= 0, "muse keys create: --expires-in-days must be positive");
    const int64_t t = now();
    const int64_t expires = o->expires_in_days > 0 ? t + o->expires_in_days * 86400 : 0;
    print_issued(Store::open(*store)->create_key(o->name, o->tier, expires, t));
    return 0;
  };
}

Runner add_keys_list(CLI::App& app) {
  auto store = add_store_option(app);
  return [store] {
    const int64_t t = now();
    std::vector<std::vector<std::string>> rows{
        {"ID", "NAME", "TIER", "PREFIX", "CREATED", "EXPIRES", "STATUS"}};
    for (const auto& k : Store::open(*store)->keys()) {
      const char* status = k.revoked_at != 0 ? "revoked" : k.active(t) ? "active" : "expired";
      rows.push_back({k.id, k.name, k.tier, k.prefix + "...", format_time(k.created),
                      format_time(k.expires_at), status});
    }
    print_table(rows);
    return 0;
  };
}

Runner add_keys_revoke(CLI::App& app) {
  auto store = add_store_option(app);
  auto id = std::make_shared<std::string>();
  app.add_option("id", *id, "The key's id (key_...)")->required();
  return [store, id] {
    MUSE_CHECK(Store::open(*store)->revoke_key(*id, now()), "muse keys revoke: no key '", *id, "'");
    std::cout << "revoked " << *id << '\n';
    return 0;
  };
}

Runner add_tiers_set(CLI::App& app) {
  struct Opts {
    std::string name, models;
    int64_t rpm = 0, tpm = 0, monthly = 0;
    int priority = 0;
  };
  auto o = std::make_shared<Opts>();
  auto store = add_store_option(app);
  app.add_option("name", o->name, "The tier's name")->required();
  auto* rpm = app.add_option("--rpm", o->rpm, "Requests per minute (0: unlimited)");
  auto* tpm = app.add_option("--tpm", o->tpm, "Tokens per minute (0: unlimited)");
  auto* monthly =
      app.add_option("--monthly-tokens", o->monthly, "Tokens per calendar month (0: unlimited)");
  auto* models =
      app.add_option("--models", o->models, "Allowed models, comma separated ('' = all)");
  auto* priority = app.add_option("--priority", o->priority, "Scheduling priority (higher first)");
  return [o, store, rpm, tpm, monthly, models, priority] {
    auto s = Store::open(*store);
    // Options not given keep the existing tier's values.
    platform::Tier t = s->find_tier(o->name).value_or(platform::Tier{});
    t.name = o->name;
    if (rpm->count() > 0) t.requests_per_minute = o->rpm;
    if (tpm->count() > 0) t.tokens_per_minute = o->tpm;
    if (monthly->count() > 0) t.monthly_tokens = o->monthly;
    if (priority->count() > 0) t.priority = o->priority;
    if (models->count() > 0) {
      t.models.clear();
      size_t start = 0;
      while (start <= o->models.size()) {
        const size_t comma = std::min(o->models.find(',', start), o->models.size());
        const std::string m = o->models.substr(start, comma - start);
        if (!m.empty()) t.models.push_back(m);
        start = comma + 1;
      }
    }
    s->upsert_tier(t);
    std::cout << "tier " << t.name << ": rpm " << limit(t.requests_per_minute) << ", tpm "
              << limit(t.tokens_per_minute) << ", monthly tokens " << limit(t.monthly_tokens)
              << ", priority " << t.priority << '\n';
    return 0;
  };
}

Runner add_tiers_list(CLI::App& app) {
  auto store = add_store_option(app);
  return [store] {
    std::vector<std::vector<std::string>> rows{
        {"NAME", "RPM", "TPM", "MONTHLY_TOKENS", "PRIORITY", "MODELS"}};
    for (const auto& t : Store::open(*store)->tiers()) {
      std::string models;
      for (const auto& m : t.models) models += (models.empty() ? "" : ",") + m;
      rows.push_back({t.name, limit(t.requests_per_minute), limit(t.tokens_per_minute),
                      limit(t.monthly_tokens), std::to_string(t.priority),
                      models.empty() ? "all" : models});
    }
    print_table(rows);
    return 0;
  };
}

Runner add_access_list(CLI::App& app) {
  auto store = add_store_option(app);
  auto status = std::make_shared<std::string>();
  app.add_option("--status", *status, "Only requests with this status")
      ->check(CLI::IsMember({"pending", "approved", "rejected"}));
  return [store, status] {
    std::vector<std::vector<std::string>> rows{
        {"ID", "STATUS", "NAME", "EMAIL", "CREATED", "KEY", "USE_CASE"}};
    for (const auto& r : Store::open(*store)->access_requests(*status))
      rows.push_back({std::to_string(r.id), r.status, r.name, r.email, format_time(r.created),
                      r.key_id.empty() ? "-" : r.key_id, r.use_case});
    print_table(rows);
    return 0;
  };
}

Runner add_access_approve(CLI::App& app) {
  auto store = add_store_option(app);
  auto id = std::make_shared<int64_t>(0);
  auto tier = std::make_shared<std::string>();
  app.add_option("id", *id, "The access request's id")->required();
  app.add_option("--tier", *tier, "Tier of the key issued to the applicant")->required();
  return [store, id, tier] {
    print_issued(Store::open(*store)->approve_access_request(*id, *tier, now()));
    return 0;
  };
}

Runner add_access_reject(CLI::App& app) {
  auto store = add_store_option(app);
  auto id = std::make_shared<int64_t>(0);
  app.add_option("id", *id, "The access request's id")->required();
  return [store, id] {
    Store::open(*store)->reject_access_request(*id, now());
    std::cout << "rejected access request " << *id << '\n';
    return 0;
  };
}

Runner add_usage(CLI::App& app) {
  struct Opts {
    std::string key, from, to;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto store = add_store_option(app);
  app.add_option("--key", o->key, "Only this key's usage (its id)");
  app.add_option("--from", o->from, "First day, YYYY-MM-DD (UTC, inclusive)");
  app.add_option("--to", o->to, "Last day, YYYY-MM-DD (UTC, inclusive)");
  app.add_flag("--json", o->json, "Print JSON instead of a table");
  return [o, store] {
    check_day(o->from, "--from");
    check_day(o->to, "--to");
    const auto rows = Store::open(*store)->usage(o->key, o->from, o->to);
    if (o->json) {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& r : rows)
        out.push_back({{"key_id", r.key_id},
                       {"model", r.model},
                       {"day", r.day},
                       {"requests", r.requests},
                       {"prompt_tokens", r.prompt_tokens},
                       {"completion_tokens", r.completion_tokens},
                       {"media_inputs", r.media_inputs}});
      std::cout << out.dump(2) << '\n';
      return 0;
    }
    std::vector<std::vector<std::string>> table{
        {"KEY", "MODEL", "DAY", "REQUESTS", "PROMPT", "COMPLETION", "MEDIA"}};
    platform::UsageRow total;
    for (const auto& r : rows) {
      table.push_back({r.key_id.empty() ? "-" : r.key_id, r.model, r.day,
                       std::to_string(r.requests), std::to_string(r.prompt_tokens),
                       std::to_string(r.completion_tokens), std::to_string(r.media_inputs)});
      total.requests += r.requests;
      total.prompt_tokens += r.prompt_tokens;
      total.completion_tokens += r.completion_tokens;
      total.media_inputs += r.media_inputs;
    }
    table.push_back({"TOTAL", "", "", std::to_string(total.requests),
                     std::to_string(total.prompt_tokens), std::to_string(total.completion_tokens),
                     std::to_string(total.media_inputs)});
    print_table(table);
    return 0;
  };
}

}  // namespace muse::cli
