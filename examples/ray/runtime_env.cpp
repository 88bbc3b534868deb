// Ray's job configuration: a RuntimeEnv whose env_vars every task of the job sees, given to
// ray::Init through RayConfig together with the command line (--ray_address=...,
// --ray_namespace=...), and Ray's log macro RAYLOG.
#include <ray/api.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

// Reads an environment variable where the task runs.
std::string ReadEnv(std::string name) {
  const char* value = std::getenv(name.c_str());
  RAYLOG(INFO) << "ReadEnv(" << name << ") ran";
  return value == nullptr ? "(unset)" : value;
}

RAY_REMOTE(ReadEnv);

int main(int argc, char** argv) {
  // The job's environment: variables set for every task and actor of the job.
  ray::RuntimeEnv env;
  env.Set("env_vars", std::map<std::string, std::string>{{"GREETING", "hello from the job"}, {"MODE", "batch"}});
  std::cout << "runtime env: env_vars " << env.GetJsonStr("env_vars") << ", has pip: " << std::boolalpha
            << env.Contains("pip") << "\n";

  ray::RayConfig config;
  config.runtime_env = env;
  std::cout << "IsInitialized() before Init: " << ray::IsInitialized() << "\n";
  ray::Init(config, argc, argv);  // --ray_address=... on the command line picks a cluster
  std::cout << "IsInitialized() after Init: " << ray::IsInitialized() << "\n";
  RAYLOG(INFO) << "the job started";

  std::cout << "a task reads GREETING: " << *ray::Task(ReadEnv).Remote(std::string("GREETING")).Get() << "\n";
  std::cout << "a task reads MODE: " << *ray::Task(ReadEnv).Remote(std::string("MODE")).Get() << "\n";

  // An environment round-trips through its serialized form.
  ray::RuntimeEnv copy = ray::RuntimeEnv::Deserialize(env.Serialize());
  auto vars = copy.Get<std::map<std::string, std::string>>("env_vars");
  std::cout << "Deserialize(Serialize()) has " << vars.size() << " env_vars; MODE=" << vars["MODE"] << "\n";

  RAYLOG(WARNING) << "shutting down";
  ray::Shutdown();
  std::cout << "IsInitialized() after Shutdown: " << ray::IsInitialized() << "\n";
  return 0;
}
