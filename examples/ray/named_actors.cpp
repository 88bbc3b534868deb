// Ray's named actors and namespaces: a job's namespace set in RayConfig, actors named in it and
// in another namespace, found by name from other functions and from inside a task, and names
// that are taken.
#include <ray/api.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

class Inventory {
 public:
  explicit Inventory(int stock) : stock_(stock) {}
  static Inventory* FactoryCreate(int stock) { return new Inventory(stock); }
  int Restock(int n) { return stock_ += n; }
  int Take(int n) {
    if (n > stock_) n = stock_;
    stock_ -= n;
    return n;
  }
  int Stock() { return stock_; }

 private:
  int stock_;
};

// A task that knows the actor only by its name.
int TakeFromShop(std::string actor_name, int n) {
  boost::optional<ray::ActorHandle<Inventory>> inventory = ray::GetActor<Inventory>(actor_name);
  if (!inventory) return -1;
  return *inventory->Task(&Inventory::Take).Remote(n).Get();
}

// A task given the handle itself: handles are arguments like any other.
int StockOf(ray::ActorHandle<Inventory> inventory) { return *inventory.Task(&Inventory::Stock).Remote().Get(); }

RAY_REMOTE(Inventory::FactoryCreate, &Inventory::Restock, &Inventory::Take, &Inventory::Stock, TakeFromShop, StockOf);

// Another part of the program: it finds the actor by name, no handle passed in.
void RestockShop(int n) {
  boost::optional<ray::ActorHandle<Inventory>> inventory = ray::GetActor<Inventory>("inventory");
  if (inventory) inventory->Task(&Inventory::Restock).Remote(n).Get();
}

int main() {
  // Named actors live in a namespace; a job sets its own in RayConfig.
  ray::RayConfig config;
  config.ray_namespace = "shop";
  ray::Init(config);
  std::cout << "job namespace: " << ray::GetNamespace() << "\n";

  ray::ActorHandle<Inventory> shop = ray::Actor(Inventory::FactoryCreate).SetName("inventory").Remote(10);
  RestockShop(5);
  std::cout << "'inventory' in 'shop' after RestockShop(5): " << *shop.Task(&Inventory::Stock).Remote().Get() << "\n";

  // The same name in another namespace is another actor.
  ray::ActorHandle<Inventory> warehouse =
      ray::Actor(Inventory::FactoryCreate).SetName("inventory", "warehouse").Remote(1000);
  boost::optional<ray::ActorHandle<Inventory>> found = ray::GetActor<Inventory>("inventory", "warehouse");
  std::cout << "GetActor(\"inventory\", \"warehouse\") stock: " << *found->Task(&Inventory::Stock).Remote().Get()
            << "\n";

  // A task looks the actor up by name, in the job's namespace.
  std::cout << "Task(TakeFromShop).Remote(\"inventory\", 3) took "
            << *ray::Task(TakeFromShop).Remote(std::string("inventory"), 3).Get()
            << "; Task(StockOf).Remote(handle) = " << *ray::Task(StockOf).Remote(shop).Get() << "\n";

  // A name nobody has gives an empty optional.
  std::cout << "GetActor(\"nobody\") found: " << std::boolalpha << bool(ray::GetActor<Inventory>("nobody")) << "\n";

  // A name is unique within its namespace while its actor lives.
  try {
    ray::Actor(Inventory::FactoryCreate).SetName("inventory").Remote(0);
    std::cout << "a second 'inventory' in 'shop' was created\n";
  } catch (const ray::internal::RayException&) {
    std::cout << "a second 'inventory' in 'shop': RayException\n";
  }

  // Once its actor is killed, the name is free again.
  warehouse.Kill();
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    gone = !ray::GetActor<Inventory>("inventory", "warehouse");
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "after Kill(), GetActor(\"inventory\", \"warehouse\") found: " << !gone << "\n";

  ray::Shutdown();
  return 0;
}
