package engine

// StoredForm is e's stored form in a persistent channel, for tests that
// write to a stream as another client could.
func StoredForm(e Event) []byte {
	b, err := appendStored(nil, &e)
	if err != nil {
		panic(err)
	}
	return b
}
