// Runs Joplin's own search engine on a profile, as the app does on its
// next start: it indexes the changes logged in item_changes since its last
// run, then searches. Prints the titles found as a JSON array.
//
//   node joplin-search.js JOPLIN_MAIN PROFILE_DIR PATTERN
//
// JOPLIN_MAIN is the terminal client's main.js (node_modules/joplin/main.js).
const { createRequire } = require('module');
const [main, profile, pattern] = process.argv.slice(2);
const jreq = createRequire(main);
const application = jreq('./app').default();
application.execCommand = async function () {
	const SearchEngine = jreq('@joplin/lib/services/search/SearchEngine').default;
	await SearchEngine.instance().syncTables();
	const found = await SearchEngine.instance().search(pattern);
	process.stdout.write(JSON.stringify(found.map((n) => n.title).sort()) + '\n');
};
process.argv = [process.argv[0], main, '--profile', profile, 'version'];
jreq('./main.js');
