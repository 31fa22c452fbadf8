package server

// ErrCodeStatuses are the errCodes Classify can answer, with their HTTP
// status: required are the catalogue's and the health route's, allowed
// adds the framework's own (Echo's HTTP errors), for the OpenAPI test.
func ErrCodeStatuses() (required, allowed map[string]int) {
	required, allowed = map[string]int{errUnhealthy: 503}, map[string]int{errUnhealthy: 503}
	for _, r := range catalogue {
		required[r.problem.Code], allowed[r.problem.Code] = r.problem.Status, r.problem.Status
	}
	for _, p := range echoProblems {
		if _, ok := allowed[p.Code]; !ok {
			allowed[p.Code] = p.Status
		}
	}
	internal := internalProblem
	required[internal.Code], allowed[internal.Code] = internal.Status, internal.Status
	return required, allowed
}
