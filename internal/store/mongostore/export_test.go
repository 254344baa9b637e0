package mongostore

// What the tests of package mongostore_test may reach inside the engine.

// FoldPoint is a point between two writes of a fold.
type FoldPoint = foldPoint

// FoldPoints are every point between two writes of a fold, in their order.
var FoldPoints = []FoldPoint{afterEntries, afterMarkingRead, afterStep, afterMarks, afterHead}

// SetFault makes every fold of s call f at each FoldPoint and fail there with the error f
// returns, if any: a crash between two writes, as the next delivery finds it. Set it
// before s is used concurrently.
func SetFault(s *Store, f func(FoldPoint) error) { s.fault = f }

// BalanceShards is the number of shards a merchant's totals are split into.
const BalanceShards = balanceShards
